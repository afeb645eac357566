//! Turns a validated loop into routing-table rows and checks the graph as a whole:
//! every legal result has an edge, every stage is reachable, and every cycle is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::assets::{at, join, LoopDefinition, Target};
use super::diag::{Code, Diagnostic};
use super::route::{BudgetedStep, CompiledEdge};
use crate::config::RecoveryConfig;
use crate::model::{Stage, TerminalResult, WorkItemKind};

const LOOP_INVALID: &str = "Invalid loop definition in asset";

/// A loop compiled into routing rows plus its entry stages.
#[derive(Debug, Clone)]
pub struct CompiledLoop {
    pub edges: Vec<CompiledEdge>,
    pub entries: BTreeMap<WorkItemKind, Stage>,
    pub warnings: Vec<Diagnostic>,
}

/// The budget an edge carries: counter key, resolved limit, and where it leads when spent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EdgeBudget {
    key: String,
    limit: u32,
    on_exhausted: Target,
}

fn edge_budget(
    edge: &super::assets::EdgeDefinition,
    recovery: &RecoveryConfig,
) -> Option<EdgeBudget> {
    let on_exhausted = edge
        .on_exhausted
        .unwrap_or(Target::Terminal(TerminalResult::Blocked));
    if let Some(name) = edge.budget {
        return Some(EdgeBudget {
            key: name.key().to_string(),
            limit: name.limit(recovery),
            on_exhausted,
        });
    }
    edge.max_attempts.map(|n| EdgeBudget {
        key: format!("edge:{}:{}", edge.source_stage, edge.on_terminal_result),
        limit: u32::try_from(n).unwrap_or(u32::MAX),
        on_exhausted,
    })
}

/// Compile a loop that passed [`super::assets::validate_loop`].
pub fn compile_loop(
    path: &Path,
    def: &LoopDefinition,
    recovery: &RecoveryConfig,
) -> Result<CompiledLoop, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let err =
        |code: Code, detail: String| Diagnostic::in_file(code, LOOP_INVALID, path, None, detail);
    let err_at = |code: Code, pos, detail: String| {
        Diagnostic::in_file(code, LOOP_INVALID, path, pos, detail)
    };

    // The entry budget of a stage: the one budget every budgeted edge into it agrees on. An
    // `on_exhausted` hop into that stage is charged to it, so "the troubleshooter runs at most
    // N times" holds whichever route leads there.
    let mut into: BTreeMap<Stage, Vec<EdgeBudget>> = BTreeMap::new();
    for edge in &def.edges {
        if let (Some(target), Some(budget)) =
            (edge.value.target_stage, edge_budget(&edge.value, recovery))
        {
            into.entry(target).or_default().push(budget);
        }
    }

    let mut edges = Vec::new();
    for spanned in &def.edges {
        let e = &spanned.value;
        let name = format!("edge {} {}", e.source_stage, e.on_terminal_result);
        let compiled = match (e.terminal_result, e.target_stage, edge_budget(e, recovery)) {
            (Some(result), _, _) => Ok((Vec::new(), Target::Terminal(result))),
            (None, Some(target), None) => Ok((Vec::new(), Target::Stage(target))),
            (None, Some(target), Some(budget)) => ladder(target, budget, &into),
            (None, None, _) => unreachable!("validate_loop requires a target or a terminal result"),
        };
        match compiled {
            Ok((budgeted, then)) => edges.push(CompiledEdge {
                source_stage: e.source_stage,
                on_terminal_result: e.on_terminal_result,
                edge_kind: e.edge_kind,
                budgeted,
                then,
            }),
            Err((code, why)) => errors.push(err_at(code, at(spanned), format!("{name}: {why}"))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let stages = &def.stages.value;
    for stage in stages {
        let missing: Vec<TerminalResult> = stage
            .legal_results()
            .iter()
            .copied()
            .filter(|r| {
                !edges
                    .iter()
                    .any(|e| e.source_stage == *stage && e.on_terminal_result == *r)
            })
            .collect();
        if !missing.is_empty() {
            errors.push(err(
                Code::GraphResultWithoutEdge,
                format!(
                    "stage {stage} has no edge for {} (the router would have nowhere to send it; \
                     add an edge, e.g. to terminal BLOCKED)",
                    join(&missing)
                ),
            ));
        }
    }

    let entries = entry_stages(def);
    let mut starts: Vec<Stage> = vec![def.entry_stage.value];
    starts.extend(entries.values().copied());
    starts.extend(def.completion_behavior.as_ref().map(|c| c.value.stage));
    starts.sort();
    starts.dedup();
    let reachable = reachable_from(&starts, &edges);
    for stage in stages.iter().filter(|s| !reachable.contains(s)) {
        errors.push(err(
            Code::GraphUnreachableStage,
            format!(
                "stage {stage} is unreachable from the entry stages ({}); add an edge to it, \
                 an entry_stages entry, or remove it",
                join(&starts)
            ),
        ));
    }

    if let Some(cycle) = unbounded_cycle(stages, &edges) {
        errors.push(err(
            Code::GraphUnboundedCycle,
            format!(
                "cycle {} has no budgeted edge, so an item could circle it forever; \
                 add budget or max_attempts to one of its edges",
                cycle
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut warnings = Vec::new();
    for result in &def.terminal_results {
        let used = edges.iter().any(|e| e.then == Target::Terminal(*result))
            || def.completion_behavior.as_ref().is_some_and(|c| {
                [
                    c.value.on_pass_terminal_result,
                    c.value.on_gap_terminal_result,
                ]
                .contains(result)
            });
        if !used {
            warnings.push(Diagnostic::in_file(
                Code::WarnUnusedTerminalResult,
                "Unused terminal result in loop asset",
                path,
                None,
                format!("{result} is declared in terminal_results but no edge ends with it"),
            ));
        }
    }
    Ok(CompiledLoop {
        edges,
        entries,
        warnings,
    })
}

/// Resolve a budgeted edge into its ladder of budgeted stages and the final fallback.
fn ladder(
    target: Stage,
    budget: EdgeBudget,
    into: &BTreeMap<Stage, Vec<EdgeBudget>>,
) -> Result<(Vec<BudgetedStep>, Target), (Code, String)> {
    let mut steps = vec![BudgetedStep {
        stage: target,
        budget_key: budget.key,
        limit: budget.limit,
    }];
    let mut next = budget.on_exhausted;
    loop {
        let stage = match next {
            Target::Terminal(_) => return Ok((steps, next)),
            Target::Stage(stage) => stage,
        };
        if steps.iter().any(|s| s.stage == stage) {
            let chain: Vec<&str> = steps.iter().map(|s| s.stage.as_str()).collect();
            return Err((
                Code::EdgeExhaustedLoop,
                format!(
                    "on_exhausted leads back to {stage} ({} -> {stage}); end the chain in a stage \
                     without a budget or a terminal result",
                    chain.join(" -> ")
                ),
            ));
        }
        let Some(budgets) = into.get(&stage) else {
            return Ok((steps, next));
        };
        let first = &budgets[0];
        if budgets.iter().any(|b| b != first) {
            return Err((
                Code::EdgeExhaustedAmbiguous,
                format!(
                    "on_exhausted goes to {stage}, but the budgeted edges into {stage} disagree on \
                     their budget or on_exhausted, so the hop's budget is ambiguous"
                ),
            ));
        }
        steps.push(BudgetedStep {
            stage,
            budget_key: first.key.clone(),
            limit: first.limit,
        });
        next = first.on_exhausted;
    }
}

/// `entry_stage` for the plane's default kinds, overridden by `entry_stages`.
fn entry_stages(def: &LoopDefinition) -> BTreeMap<WorkItemKind, Stage> {
    let mut entries: BTreeMap<WorkItemKind, Stage> = WorkItemKind::ALL
        .into_iter()
        .filter(|k| k.plane() == def.plane)
        .map(|k| (k, def.entry_stage.value))
        .collect();
    if let Some(extra) = &def.entry_stages {
        entries.extend(extra.value.iter().map(|(k, s)| (*k, *s)));
    }
    entries
}

/// Every stage a route can move to from `stage`, with whether that move is budgeted.
fn moves(edges: &[CompiledEdge]) -> Vec<(Stage, Stage, bool)> {
    let mut out = Vec::new();
    for e in edges {
        out.extend(e.budgeted.iter().map(|s| (e.source_stage, s.stage, true)));
        if let Target::Stage(next) = e.then {
            out.push((e.source_stage, next, false));
        }
    }
    out
}

fn reachable_from(starts: &[Stage], edges: &[CompiledEdge]) -> BTreeSet<Stage> {
    let all = moves(edges);
    let mut seen: BTreeSet<Stage> = starts.iter().copied().collect();
    let mut todo: Vec<Stage> = starts.to_vec();
    while let Some(stage) = todo.pop() {
        for (_, to, _) in all.iter().filter(|(from, _, _)| *from == stage) {
            if seen.insert(*to) {
                todo.push(*to);
            }
        }
    }
    seen
}

/// A cycle made only of unbudgeted moves, as a stage path that starts and ends at one stage.
///
/// Budgets are never reset while an item is active, so a cycle with one budgeted move can be
/// taken only finitely often; a cycle without one is the only way to circle forever.
fn unbounded_cycle(stages: &[Stage], edges: &[CompiledEdge]) -> Option<Vec<Stage>> {
    let free: Vec<(Stage, Stage)> = moves(edges)
        .into_iter()
        .filter(|(_, _, budgeted)| !budgeted)
        .map(|(a, b, _)| (a, b))
        .collect();
    let mut done = BTreeSet::new();
    for start in stages {
        let mut path = Vec::new();
        if let Some(cycle) = dfs(*start, &free, &mut path, &mut done) {
            return Some(cycle);
        }
    }
    None
}

fn dfs(
    stage: Stage,
    free: &[(Stage, Stage)],
    path: &mut Vec<Stage>,
    done: &mut BTreeSet<Stage>,
) -> Option<Vec<Stage>> {
    if let Some(pos) = path.iter().position(|s| *s == stage) {
        let mut cycle = path[pos..].to_vec();
        cycle.push(stage);
        return Some(cycle);
    }
    if done.contains(&stage) {
        return None;
    }
    path.push(stage);
    for (_, next) in free.iter().filter(|(from, _)| *from == stage) {
        if let Some(cycle) = dfs(*next, free, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(stage);
    None
}
