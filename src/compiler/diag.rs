//! Compile diagnostics: one stable code per rule, plus the file (and line) it is about.
//!
//! Codes are part of the interface (scripts and ops agents match on them); the text after the
//! code starts with the reference's message so people who know millrace-ai recognise it, then
//! names the exact rule that failed instead of swallowing it.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A stable diagnostic code. `E-` codes fail the compile, `W-` codes are warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    ModeUnknown,
    ModeRead,
    ModeYaml,
    ModeSchema,
    ModeIdMismatch,
    ModeStageOutsideLoops,
    ModeEntrypointOverride,
    LoopUnknown,
    LoopRead,
    LoopYaml,
    LoopSchema,
    LoopIdMismatch,
    LoopPlane,
    LoopEntryNotInStages,
    LoopStagesNotUnique,
    LoopStageWrongPlane,
    LoopEntryKindPlane,
    LoopNoTerminalEdge,
    EdgeMaxAttempts,
    EdgeTargetXorTerminal,
    EdgeTerminalNeedsResult,
    EdgeNeedsTarget,
    EdgeSourceNotInStages,
    EdgeIllegalResult,
    EdgeTargetNotInStages,
    EdgeTerminalNotDeclared,
    EdgeDuplicate,
    EdgeBudgetConflict,
    EdgeBudgetOnTerminal,
    EdgeExhaustedWithoutBudget,
    EdgeExhaustedNotInStages,
    EdgeExhaustedNotDeclared,
    EdgeExhaustedAmbiguous,
    EdgeExhaustedLoop,
    EdgeTerminalConsequence,
    CompletionStageNotInStages,
    CompletionStageWrongPlane,
    CompletionPassNotDeclared,
    CompletionGapNotDeclared,
    CompletionPassGapSame,
    CompletionPassIllegal,
    CompletionGapIllegal,
    GraphUnreachableStage,
    GraphUnboundedCycle,
    GraphResultWithoutEdge,
    WarnUnusedTerminalResult,
    WarnExecutionCompletionIgnored,
}

impl Code {
    /// The code as printed (`E-LOOP-ENTRY-NOT-IN-STAGES`).
    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            ModeUnknown => "E-MODE-UNKNOWN",
            ModeRead => "E-MODE-READ",
            ModeYaml => "E-MODE-YAML",
            ModeSchema => "E-MODE-SCHEMA",
            ModeIdMismatch => "E-MODE-ID-MISMATCH",
            ModeStageOutsideLoops => "E-MODE-STAGE-OUTSIDE-LOOPS",
            ModeEntrypointOverride => "E-MODE-ENTRYPOINT-OVERRIDE",
            LoopUnknown => "E-LOOP-UNKNOWN",
            LoopRead => "E-LOOP-READ",
            LoopYaml => "E-LOOP-YAML",
            LoopSchema => "E-LOOP-SCHEMA",
            LoopIdMismatch => "E-LOOP-ID-MISMATCH",
            LoopPlane => "E-LOOP-PLANE",
            LoopEntryNotInStages => "E-LOOP-ENTRY-NOT-IN-STAGES",
            LoopStagesNotUnique => "E-LOOP-STAGES-NOT-UNIQUE",
            LoopStageWrongPlane => "E-LOOP-STAGE-WRONG-PLANE",
            LoopEntryKindPlane => "E-LOOP-ENTRY-KIND-PLANE",
            LoopNoTerminalEdge => "E-LOOP-NO-TERMINAL-EDGE",
            EdgeMaxAttempts => "E-EDGE-MAX-ATTEMPTS",
            EdgeTargetXorTerminal => "E-EDGE-TARGET-XOR-TERMINAL",
            EdgeTerminalNeedsResult => "E-EDGE-TERMINAL-NEEDS-RESULT",
            EdgeNeedsTarget => "E-EDGE-NEEDS-TARGET",
            EdgeSourceNotInStages => "E-EDGE-SOURCE-NOT-IN-STAGES",
            EdgeIllegalResult => "E-EDGE-ILLEGAL-RESULT",
            EdgeTargetNotInStages => "E-EDGE-TARGET-NOT-IN-STAGES",
            EdgeTerminalNotDeclared => "E-EDGE-TERMINAL-NOT-DECLARED",
            EdgeDuplicate => "E-EDGE-DUPLICATE",
            EdgeBudgetConflict => "E-EDGE-BUDGET-CONFLICT",
            EdgeBudgetOnTerminal => "E-EDGE-BUDGET-ON-TERMINAL",
            EdgeExhaustedWithoutBudget => "E-EDGE-EXHAUSTED-WITHOUT-BUDGET",
            EdgeExhaustedNotInStages => "E-EDGE-EXHAUSTED-NOT-IN-STAGES",
            EdgeExhaustedNotDeclared => "E-EDGE-EXHAUSTED-NOT-DECLARED",
            EdgeExhaustedAmbiguous => "E-EDGE-EXHAUSTED-AMBIGUOUS",
            EdgeExhaustedLoop => "E-EDGE-EXHAUSTED-LOOP",
            EdgeTerminalConsequence => "E-EDGE-TERMINAL-CONSEQUENCE",
            CompletionStageNotInStages => "E-COMPLETION-STAGE-NOT-IN-STAGES",
            CompletionStageWrongPlane => "E-COMPLETION-STAGE-WRONG-PLANE",
            CompletionPassNotDeclared => "E-COMPLETION-PASS-NOT-DECLARED",
            CompletionGapNotDeclared => "E-COMPLETION-GAP-NOT-DECLARED",
            CompletionPassGapSame => "E-COMPLETION-PASS-GAP-SAME",
            CompletionPassIllegal => "E-COMPLETION-PASS-ILLEGAL",
            CompletionGapIllegal => "E-COMPLETION-GAP-ILLEGAL",
            GraphUnreachableStage => "E-GRAPH-UNREACHABLE-STAGE",
            GraphUnboundedCycle => "E-GRAPH-UNBOUNDED-CYCLE",
            GraphResultWithoutEdge => "E-GRAPH-RESULT-WITHOUT-EDGE",
            WarnUnusedTerminalResult => "W-LOOP-UNUSED-TERMINAL-RESULT",
            WarnExecutionCompletionIgnored => "W-LOOP-COMPLETION-IGNORED",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 1-based line and column in an asset file.
pub type LineCol = (u64, u64);

/// One finding of a compile: its code and the full message (which names the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic whose message is complete as given.
    pub fn new(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            message: message.into(),
        }
    }

    /// `<summary>: <file>[:LINE:COL]: <detail>` — the reference summary, then where, then why.
    pub fn in_file(
        code: Code,
        summary: &str,
        file: &Path,
        at: Option<LineCol>,
        detail: impl fmt::Display,
    ) -> Diagnostic {
        let location = match at {
            Some((line, col)) => format!("{}:{line}:{col}", file.display()),
            None => file.display().to_string(),
        };
        Diagnostic::new(code, format!("{summary}: {location}: {detail}"))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// `state/compile_diagnostics.yaml` (spec 05 §7.7), with coded messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileDiagnostics {
    pub schema_version: String,
    pub kind: String,
    pub ok: bool,
    pub mode_id: String,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub emitted_at: String,
}

impl CompileDiagnostics {
    /// Diagnostics for one compile of `mode_id`; `ok` when there is no error.
    pub fn new(mode_id: &str, errors: &[Diagnostic], warnings: &[Diagnostic]) -> Self {
        CompileDiagnostics {
            schema_version: "1.0".into(),
            kind: "compile_diagnostics".into(),
            ok: errors.is_empty(),
            mode_id: mode_id.to_string(),
            errors: errors.iter().map(ToString::to_string).collect(),
            warnings: warnings.iter().map(ToString::to_string).collect(),
            emitted_at: crate::time::now_string(),
        }
    }
}
