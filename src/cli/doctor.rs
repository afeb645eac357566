//! `millrace doctor`: check the workspace and say how to fix each problem. Read-only.

use super::{open_read_only, Ctx};
use crate::error::{ExitCode, Result};
use crate::inspect::doctor::{self, Level, Report};

fn render(report: &Report) -> String {
    let mut out = format!(
        "workspace: {}\nok: {}\nerrors: {}\nwarnings: {}\n",
        report.workspace, report.ok, report.errors, report.warnings
    );
    for f in &report.findings {
        let level = match f.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        out.push_str(&format!(
            "{level}: {} {} {}\n  fix: {}\n",
            f.code,
            f.path.as_deref().unwrap_or("none"),
            f.message,
            f.fix
        ));
    }
    out
}

pub fn run(ctx: &Ctx) -> Result<ExitCode> {
    let ws = open_read_only(ctx)?;
    let report = doctor::diagnose(&ws);
    ctx.emit(&report, || render(&report));
    Ok(if report.ok {
        ExitCode::Ok
    } else {
        ExitCode::Unhealthy
    })
}
