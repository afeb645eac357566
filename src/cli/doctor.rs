//! `millrace doctor`: check the workspace and say how to fix each problem. Read-only.

use clap::Args;

use super::{open_read_only, Ctx};
use crate::error::{ExitCode, Result};
use crate::inspect::doctor::{self, Level, Report};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also measure the workspace's size by part (walks every run and finished item, so it
    /// takes longer on a large history).
    #[arg(long)]
    pub sizes: bool,
    /// Also check every finished document and every run folder (by default doctor looks
    /// where the runtime works, so it is as fast with years of history as on day one).
    #[arg(long)]
    pub full: bool,
}

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
        let path = f
            .path
            .as_deref()
            .map(|p| format!("{p} "))
            .unwrap_or_default();
        out.push_str(&format!(
            "{level}: {} {path}{}\n  fix: {}\n",
            f.code, f.message, f.fix
        ));
    }
    if let Some(sizes) = &report.sizes {
        out.push_str("sizes:\n");
        for part in sizes {
            out.push_str(&format!(
                "  {:<28} {:>10}  {:>8} files  {}\n",
                part.part,
                super::progress::size(part.bytes),
                part.files,
                part.path
            ));
        }
    }
    out
}

pub fn run(ctx: &Ctx, args: &DoctorArgs) -> Result<ExitCode> {
    let ws = open_read_only(ctx)?;
    let mut report = doctor::diagnose(&ws, args.full);
    if args.sizes {
        report.sizes = Some(doctor::sizes(&ws));
    }
    ctx.emit(&report, || render(&report));
    Ok(if report.ok {
        ExitCode::Ok
    } else {
        ExitCode::Unhealthy
    })
}
