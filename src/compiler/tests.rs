use std::path::{Path, PathBuf};

use super::*;
use crate::config::Config;

fn shipped_assets() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::workspace::deploy_assets(dir.path()).unwrap();
    dir
}

fn compile_default(assets: &Path, config: &Config) -> Compiled {
    compile_assets(assets, config, "standard_plain").unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn print_digest() {
    let dir = shipped_assets();
    let compiled = compile_default(dir.path(), &Config::default());
    println!("DIGEST {}", routing_digest(&compiled.plan.routing));
    println!("ID {}", compiled.plan.compiled_plan_id);
    println!("{}", crate::yaml::to_string(&compiled.plan));
    let _: PathBuf = dir.path().to_path_buf();
}
