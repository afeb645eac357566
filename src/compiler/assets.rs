//! Mode and loop assets: where they live in a workspace, their strict schemas, and the
//! per-file validation rules (spec 05 §3, §4, §7.3) plus this port's edge extensions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_saphyr::Spanned;

use super::diag::{Code, Diagnostic, LineCol};
use super::route::Consequence;
use crate::model::{Plane, Stage, TerminalResult, WorkItemKind};

const MODE_INVALID: &str = "Invalid mode definition in asset";
const LOOP_INVALID: &str = "Invalid loop definition in asset";

/// A mode asset (`modes/<id>.yaml`): which loops to run and per-stage bindings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeDefinition {
    #[serde(default = "schema_v1")]
    pub schema_version: String,
    #[serde(default = "mode_kind")]
    pub kind: String,
    pub mode_id: String,
    pub execution_loop_id: String,
    pub planning_loop_id: String,
    #[serde(default)]
    pub stage_entrypoint_overrides: BTreeMap<Stage, String>,
    #[serde(default)]
    pub stage_skill_additions: BTreeMap<Stage, Vec<String>>,
    #[serde(default)]
    pub stage_model_bindings: BTreeMap<Stage, String>,
    #[serde(default)]
    pub stage_runner_bindings: BTreeMap<Stage, String>,
}

fn schema_v1() -> String {
    "1.0".into()
}
fn mode_kind() -> String {
    "mode".into()
}
fn loop_kind() -> String {
    "loop_config".into()
}

/// A loop asset (`loops/<plane>/<name>.yaml`): the stage graph of one plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopDefinition {
    #[serde(default = "schema_v1")]
    pub schema_version: String,
    #[serde(default = "loop_kind")]
    pub kind: String,
    pub loop_id: String,
    pub plane: Plane,
    pub stages: Spanned<Vec<Stage>>,
    pub entry_stage: Spanned<Stage>,
    /// Extension: entry stage per work-item kind where it differs from `entry_stage`.
    #[serde(default)]
    pub entry_stages: Option<Spanned<BTreeMap<WorkItemKind, Stage>>>,
    pub edges: Vec<Spanned<EdgeDefinition>>,
    pub terminal_results: Vec<TerminalResult>,
    #[serde(default)]
    pub completion_behavior: Option<Spanned<CompletionBehavior>>,
}

/// Informational edge classification from the reference schema; routing ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    #[default]
    Normal,
    Retry,
    Escalation,
    Handoff,
    Terminal,
}

/// A recovery limit from config an edge may be budgeted by.
/// Written in loops as the config key (`budget: max_fix_cycles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetName {
    #[serde(rename = "max_fix_cycles")]
    FixCycles,
    #[serde(rename = "max_troubleshoot_attempts_before_consult")]
    TroubleshootAttempts,
    #[serde(rename = "max_mechanic_attempts")]
    MechanicAttempts,
    #[serde(rename = "max_consultant_invocations")]
    ConsultantInvocations,
}

impl BudgetName {
    /// The counter key the engine stores attempts under (one per work item).
    pub fn key(self) -> &'static str {
        match self {
            BudgetName::FixCycles => "fix_cycle",
            BudgetName::TroubleshootAttempts => "troubleshoot",
            BudgetName::MechanicAttempts => "mechanic",
            BudgetName::ConsultantInvocations => "consultant",
        }
    }

    /// The limit this budget has under `recovery`.
    pub fn limit(self, recovery: &crate::config::RecoveryConfig) -> u32 {
        match self {
            BudgetName::FixCycles => recovery.max_fix_cycles,
            BudgetName::TroubleshootAttempts => recovery.max_troubleshoot_attempts_before_consult,
            BudgetName::MechanicAttempts => recovery.max_mechanic_attempts,
            BudgetName::ConsultantInvocations => recovery.max_consultant_invocations,
        }
    }
}

/// Where a route ends up: another stage, or a terminal result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Stage(Stage),
    Terminal(TerminalResult),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Stage(s) => f.write_str(s.as_str()),
            Target::Terminal(r) => f.write_str(r.as_str()),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Ok(stage) = text.parse::<Stage>() {
            return Ok(Target::Stage(stage));
        }
        text.parse::<TerminalResult>()
            .map(Target::Terminal)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{text}` is neither a stage name nor a terminal result"
                ))
            })
    }
}

/// One loop edge (spec 05 §4.2) with the budget extension.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeDefinition {
    pub source_stage: Stage,
    pub on_terminal_result: TerminalResult,
    #[serde(default)]
    pub target_stage: Option<Stage>,
    #[serde(default)]
    pub terminal_result: Option<TerminalResult>,
    #[serde(default)]
    pub edge_kind: EdgeKind,
    /// Fixed budget for this edge alone (counter key `edge:<stage>:<RESULT>`).
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// Budget from a `recovery.*` limit, shared by every edge naming it.
    #[serde(default)]
    pub budget: Option<BudgetName>,
    /// Where the item goes once the budget is spent; `BLOCKED` when absent.
    #[serde(default)]
    pub on_exhausted: Option<Target>,
}

/// Single-valued literal fields of the completion behaviour.
macro_rules! literal {
    ($name:ident, $variant:ident) => {
        #[doc = concat!("The only value `", stringify!($name), "` has in this schema version.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $variant,
        }
    };
}

literal!(CompletionTrigger, BacklogDrained);
literal!(ReadinessRule, NoOpenLineageWork);
literal!(RequestKind, ClosureTarget);
literal!(TargetSelector, ActiveClosureTarget);
literal!(RubricPolicy, ReuseOrCreate);
literal!(BlockedWorkPolicy, Suppress);

/// When and how the arbiter runs once a lineage drains (spec 05 §4.3, 07).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionBehavior {
    pub trigger: CompletionTrigger,
    pub readiness_rule: ReadinessRule,
    pub stage: Stage,
    pub request_kind: RequestKind,
    pub target_selector: TargetSelector,
    pub rubric_policy: RubricPolicy,
    pub blocked_work_policy: BlockedWorkPolicy,
    #[serde(default = "yes")]
    pub skip_if_already_closed: bool,
    pub on_pass_terminal_result: TerminalResult,
    pub on_gap_terminal_result: TerminalResult,
    #[serde(default)]
    pub create_incident_on_gap: bool,
}

fn yes() -> bool {
    true
}

/// Where a spanned value starts in its file, when known.
pub(crate) fn at<T>(spanned: &Spanned<T>) -> Option<LineCol> {
    let loc = spanned.referenced;
    (loc.line() > 0).then(|| (loc.line(), loc.column()))
}

/// Mode and loop ids become file names; anything but a plain name is unknown.
fn plain_name(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `<assets>/modes/<id>.yaml`, or `None` when `id` cannot name a file.
pub fn mode_path(assets: &Path, id: &str) -> Option<PathBuf> {
    plain_name(id).then(|| assets.join("modes").join(format!("{id}.yaml")))
}

/// Loop id → file: `<plane>.standard` is `loops/<plane>/default.yaml`, `<plane>.<name>` is
/// `loops/<plane>/<name>.yaml`.
pub fn loop_path(assets: &Path, id: &str) -> Option<PathBuf> {
    let (plane, name) = id.split_once('.')?;
    let plane: Plane = plane.parse().ok()?;
    if !plain_name(name) || name.contains('.') {
        return None;
    }
    let file = if name == "standard" { "default" } else { name };
    Some(
        assets
            .join("loops")
            .join(plane.as_str())
            .join(format!("{file}.yaml")),
    )
}

/// Every mode id with a file in `<assets>/modes`, sorted.
pub fn list_mode_ids(assets: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(assets.join("modes"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".yaml")?;
            plain_name(id).then(|| id.to_string())
        })
        .collect();
    ids.sort();
    ids
}

/// Which asset family a file belongs to, for the reference's message wording.
#[derive(Clone, Copy)]
enum Family {
    Mode,
    Loop,
}

impl Family {
    fn word(self) -> &'static str {
        match self {
            Family::Mode => "mode",
            Family::Loop => "loop",
        }
    }
}

/// Read and parse one asset: read error, YAML syntax (or a non-mapping top level), schema.
fn read_asset<T: serde::de::DeserializeOwned>(
    family: Family,
    path: &Path,
) -> Result<T, Diagnostic> {
    let (read, yaml, schema, invalid) = match family {
        Family::Mode => (
            Code::ModeRead,
            Code::ModeYaml,
            Code::ModeSchema,
            MODE_INVALID,
        ),
        Family::Loop => (
            Code::LoopRead,
            Code::LoopYaml,
            Code::LoopSchema,
            LOOP_INVALID,
        ),
    };
    let word = family.word();
    let text = crate::workspace::atomic::read_regular_string(path).map_err(|e| {
        Diagnostic::new(
            read,
            format!("Cannot read {word} asset: {}: {e}", path.display()),
        )
    })?;
    let summary = format!("Invalid YAML in {word} asset");
    match crate::yaml::from_str::<serde_json::Value>(path, &text) {
        Ok(serde_json::Value::Object(_)) => {}
        Ok(_) => {
            return Err(Diagnostic::in_file(
                yaml,
                &summary,
                path,
                None,
                "the top level must be a mapping",
            ))
        }
        Err(e) => {
            return Err(Diagnostic::in_file(
                yaml,
                &summary,
                path,
                e.location,
                without_location(&e.message),
            ))
        }
    }
    crate::yaml::from_str::<T>(path, &text).map_err(|e| {
        Diagnostic::in_file(
            schema,
            invalid,
            path,
            e.location,
            without_location(&e.message),
        )
    })
}

/// The parser repeats the position at the end of its message; the diagnostic already has it.
fn without_location(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(pos) if message[pos..].contains(", column ") => &message[..pos],
        _ => message,
    }
}

/// Load `modes/<id>.yaml` and check it (spec 05 §7.3 steps 1–5).
pub fn load_mode(assets: &Path, id: &str) -> Result<(PathBuf, ModeDefinition), Diagnostic> {
    let unknown = |why: String| {
        Diagnostic::new(
            Code::ModeUnknown,
            format!(
                "Unknown built-in mode id: {id} ({why}; `millrace modes list` shows the modes)"
            ),
        )
    };
    let path = mode_path(assets, id).ok_or_else(|| unknown("not a valid mode name".into()))?;
    if !path.exists() {
        return Err(unknown(format!("no file {}", path.display())));
    }
    let mode: ModeDefinition = read_asset(Family::Mode, &path)?;
    let literal_error = literal_error(&mode.schema_version, &mode.kind, "mode");
    if let Some(detail) = literal_error {
        return Err(Diagnostic::in_file(
            Code::ModeSchema,
            MODE_INVALID,
            &path,
            None,
            detail,
        ));
    }
    if mode.mode_id != id {
        return Err(Diagnostic::new(
            Code::ModeIdMismatch,
            format!(
                "Mode asset id mismatch: expected {id}, found {} (in {})",
                mode.mode_id,
                path.display()
            ),
        ));
    }
    Ok((path, mode))
}

fn literal_error(schema_version: &str, kind: &str, expected_kind: &str) -> Option<String> {
    if schema_version != "1.0" {
        Some(format!(
            "schema_version must be \"1.0\" (found \"{schema_version}\")"
        ))
    } else if kind != expected_kind {
        Some(format!(
            "kind must be \"{expected_kind}\" (found \"{kind}\")"
        ))
    } else {
        None
    }
}

/// Load a loop by id and apply every per-file rule; all findings of the first failing rule
/// family are returned together.
pub fn load_loop(assets: &Path, id: &str) -> Result<(PathBuf, LoopDefinition), Vec<Diagnostic>> {
    let unknown = |why: String| {
        vec![Diagnostic::new(
            Code::LoopUnknown,
            format!("Unknown built-in loop id: {id} ({why})"),
        )]
    };
    let path = loop_path(assets, id)
        .ok_or_else(|| unknown("loop ids are `<plane>.<name>`, e.g. execution.standard".into()))?;
    if !path.exists() {
        return Err(unknown(format!("no file {}", path.display())));
    }
    let def: LoopDefinition = read_asset(Family::Loop, &path).map_err(|d| vec![d])?;
    let errors = validate_loop(&path, &def);
    if !errors.is_empty() {
        return Err(errors);
    }
    if def.loop_id != id {
        return Err(vec![Diagnostic::new(
            Code::LoopIdMismatch,
            format!(
                "Loop asset id mismatch: expected {id}, found {} (in {})",
                def.loop_id,
                path.display()
            ),
        )]);
    }
    Ok((path, def))
}

/// The spec 05 §4 rules in reference order, then the extension rules; stops after the first
/// group that finds anything so later rules can rely on earlier ones.
pub fn validate_loop(path: &Path, def: &LoopDefinition) -> Vec<Diagnostic> {
    let mut v = LoopCheck {
        path,
        errors: Vec::new(),
    };
    if let Some(detail) = literal_error(&def.schema_version, &def.kind, "loop_config") {
        v.err(Code::LoopSchema, None, detail);
        return v.errors;
    }
    v.edge_shapes(def);
    if v.errors.is_empty() {
        v.loop_rules(def);
    }
    if v.errors.is_empty() {
        v.extension_rules(def);
    }
    v.errors
}

struct LoopCheck<'a> {
    path: &'a Path,
    errors: Vec<Diagnostic>,
}

impl LoopCheck<'_> {
    fn err(&mut self, code: Code, at: Option<LineCol>, detail: impl fmt::Display) {
        self.errors.push(Diagnostic::in_file(
            code,
            LOOP_INVALID,
            self.path,
            at,
            detail,
        ));
    }

    /// Spec 05 §4.2: shape of each edge on its own.
    fn edge_shapes(&mut self, def: &LoopDefinition) {
        for edge in &def.edges {
            let (e, pos) = (&edge.value, at(edge));
            let name = format!("edge {} {}", e.source_stage, e.on_terminal_result);
            if e.max_attempts.is_some_and(|n| n < 1) {
                self.err(
                    Code::EdgeMaxAttempts,
                    pos,
                    format!("{name}: max_attempts must be >= 1"),
                );
            }
            if e.target_stage.is_some() == e.terminal_result.is_some() {
                self.err(
                    Code::EdgeTargetXorTerminal,
                    pos,
                    format!("{name}: exactly one of target_stage or terminal_result must be set"),
                );
            } else if e.edge_kind == EdgeKind::Terminal && e.terminal_result.is_none() {
                self.err(
                    Code::EdgeTerminalNeedsResult,
                    pos,
                    format!("{name}: terminal edges require terminal_result"),
                );
            } else if e.edge_kind != EdgeKind::Terminal && e.target_stage.is_none() {
                self.err(
                    Code::EdgeNeedsTarget,
                    pos,
                    format!(
                        "{name}: non-terminal edges require target_stage (set edge_kind: terminal)"
                    ),
                );
            }
        }
    }

    /// Spec 05 §4.4, in order.
    fn loop_rules(&mut self, def: &LoopDefinition) {
        let stages = &def.stages.value;
        let stage_pos = at(&def.stages);
        if !stages.contains(&def.entry_stage.value) {
            self.err(
                Code::LoopEntryNotInStages,
                at(&def.entry_stage),
                format!(
                    "entry_stage must be in stages (found {})",
                    def.entry_stage.value
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for stage in stages {
            if !seen.insert(*stage) {
                self.err(
                    Code::LoopStagesNotUnique,
                    stage_pos,
                    format!("stages must be unique ({stage} appears twice)"),
                );
            }
        }
        for stage in stages.iter().filter(|s| s.plane() != def.plane) {
            self.err(
                Code::LoopStageWrongPlane,
                stage_pos,
                format!(
                    "stages must belong to the loop plane ({stage} is a {} stage, the loop is {})",
                    stage.plane(),
                    def.plane
                ),
            );
        }
        let mut has_terminal = false;
        for edge in &def.edges {
            let (e, pos) = (&edge.value, at(edge));
            let name = format!("edge {} {}", e.source_stage, e.on_terminal_result);
            if !stages.contains(&e.source_stage) {
                self.err(
                    Code::EdgeSourceNotInStages,
                    pos,
                    format!("{name}: edge source_stage must be in stages"),
                );
            }
            if !e.source_stage.is_legal(e.on_terminal_result) {
                self.err(
                    Code::EdgeIllegalResult,
                    pos,
                    format!(
                        "{name}: edge on_terminal_result is not legal for source_stage (legal: {})",
                        join(e.source_stage.legal_results())
                    ),
                );
            }
            if let Some(target) = e.target_stage.filter(|t| !stages.contains(t)) {
                self.err(
                    Code::EdgeTargetNotInStages,
                    pos,
                    format!("{name}: edge target_stage must be in stages (found {target})"),
                );
            }
            if let Some(result) = e.terminal_result {
                has_terminal = true;
                if !def.terminal_results.contains(&result) {
                    self.err(
                        Code::EdgeTerminalNotDeclared,
                        pos,
                        format!("{name}: edge terminal_result must be in terminal_results (found {result})"),
                    );
                }
            }
        }
        if let Some(cb) = &def.completion_behavior {
            self.completion_rules(def, cb);
        }
        if !has_terminal {
            self.err(
                Code::LoopNoTerminalEdge,
                None,
                "loop must include at least one terminal edge",
            );
        }
    }

    /// Spec 05 §4.3 object rules and §4.4 rule 5.
    fn completion_rules(&mut self, def: &LoopDefinition, cb: &Spanned<CompletionBehavior>) {
        let (c, pos) = (&cb.value, at(cb));
        if c.on_pass_terminal_result == c.on_gap_terminal_result {
            self.err(
                Code::CompletionPassGapSame,
                pos,
                "completion behavior pass/gap results must differ",
            );
        }
        if !c.stage.is_legal(c.on_pass_terminal_result) {
            self.err(
                Code::CompletionPassIllegal,
                pos,
                format!(
                    "on_pass_terminal_result is not legal for completion stage {}",
                    c.stage
                ),
            );
        }
        if !c.stage.is_legal(c.on_gap_terminal_result) {
            self.err(
                Code::CompletionGapIllegal,
                pos,
                format!(
                    "on_gap_terminal_result is not legal for completion stage {}",
                    c.stage
                ),
            );
        }
        if !def.stages.value.contains(&c.stage) {
            self.err(
                Code::CompletionStageNotInStages,
                pos,
                format!(
                    "completion_behavior stage must be in stages (found {})",
                    c.stage
                ),
            );
        }
        if c.stage.plane() != def.plane {
            self.err(
                Code::CompletionStageWrongPlane,
                pos,
                "completion_behavior stage must belong to loop plane",
            );
        }
        for (result, code, which) in [
            (
                c.on_pass_terminal_result,
                Code::CompletionPassNotDeclared,
                "on_pass_terminal_result",
            ),
            (
                c.on_gap_terminal_result,
                Code::CompletionGapNotDeclared,
                "on_gap_terminal_result",
            ),
        ] {
            if !def.terminal_results.contains(&result) {
                self.err(
                    code,
                    pos,
                    format!("completion_behavior {which} must be in terminal_results"),
                );
            }
        }
    }

    /// Rules for this port's additions: entry stages, budgets, and what terminal edges mean.
    fn extension_rules(&mut self, def: &LoopDefinition) {
        let stages = &def.stages.value;
        if let Some(entries) = &def.entry_stages {
            for (kind, stage) in &entries.value {
                if kind.plane() != def.plane {
                    self.err(
                        Code::LoopEntryKindPlane,
                        at(entries),
                        format!(
                            "entry_stages: {kind} items run on the {} plane, not {}",
                            kind.plane(),
                            def.plane
                        ),
                    );
                } else if !stages.contains(stage) {
                    self.err(
                        Code::LoopEntryNotInStages,
                        at(entries),
                        format!("entry_stages: {kind} entry must be in stages (found {stage})"),
                    );
                }
            }
        }
        let completion_stage = def.completion_behavior.as_ref().map(|c| c.value.stage);
        let mut pairs = BTreeSet::new();
        for edge in &def.edges {
            let (e, pos) = (&edge.value, at(edge));
            let name = format!("edge {} {}", e.source_stage, e.on_terminal_result);
            if !pairs.insert((e.source_stage, e.on_terminal_result)) {
                self.err(
                    Code::EdgeDuplicate,
                    pos,
                    format!("{name}: a second edge for the same stage and result (the router needs exactly one)"),
                );
            }
            let budgeted = e.budget.is_some() || e.max_attempts.is_some();
            if e.budget.is_some() && e.max_attempts.is_some() {
                self.err(
                    Code::EdgeBudgetConflict,
                    pos,
                    format!("{name}: set budget or max_attempts, not both"),
                );
            }
            if budgeted && e.terminal_result.is_some() {
                self.err(
                    Code::EdgeBudgetOnTerminal,
                    pos,
                    format!("{name}: a terminal edge ends the item, so a budget on it can never be spent"),
                );
            }
            match e.on_exhausted {
                Some(_) if !budgeted => self.err(
                    Code::EdgeExhaustedWithoutBudget,
                    pos,
                    format!("{name}: on_exhausted needs budget or max_attempts on the same edge"),
                ),
                Some(Target::Stage(stage)) if !stages.contains(&stage) => self.err(
                    Code::EdgeExhaustedNotInStages,
                    pos,
                    format!("{name}: on_exhausted stage must be in stages (found {stage})"),
                ),
                Some(Target::Terminal(result))
                    if result != TerminalResult::Blocked && !def.terminal_results.contains(&result) =>
                {
                    self.err(
                        Code::EdgeExhaustedNotDeclared,
                        pos,
                        format!("{name}: on_exhausted result must be in terminal_results (found {result})"),
                    )
                }
                _ => {}
            }
            let ends = [
                e.terminal_result,
                match e.on_exhausted {
                    Some(Target::Terminal(r)) => Some(r),
                    _ => None,
                },
            ];
            for result in ends.into_iter().flatten() {
                if let Err(why) = terminal_fits(result, e.source_stage, def.plane, completion_stage)
                {
                    self.err(Code::EdgeTerminalConsequence, pos, format!("{name}: {why}"));
                }
            }
        }
    }
}

/// Whether the runtime knows what ending an item with `result` means at this place.
fn terminal_fits(
    result: TerminalResult,
    source: Stage,
    plane: Plane,
    completion_stage: Option<Stage>,
) -> Result<(), String> {
    let Some(consequence) = Consequence::of(result) else {
        return Err(format!(
            "{result} cannot end an item (terminal results: UPDATE_COMPLETE, MANAGER_COMPLETE, \
             ARBITER_COMPLETE, NEEDS_PLANNING, REMEDIATION_NEEDED, BLOCKED)"
        ));
    };
    match consequence {
        Consequence::Handoff if plane != Plane::Execution => Err(format!(
            "{result} hands work to planning, so only an execution loop may end with it"
        )),
        Consequence::CloseTarget | Consequence::Remediation if completion_stage != Some(source) => {
            Err(format!(
                "{result} concerns a closure target, so only the completion stage may end with it"
            ))
        }
        _ => Ok(()),
    }
}

/// `A, B, C` for messages.
pub(crate) fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
