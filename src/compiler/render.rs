//! Loop topology as Mermaid or Graphviz text, for docs. Output depends only on the plan's
//! routing and loop ids, in plan order, so it is stable enough to check in.

use super::assets::Target;
use super::plan::FrozenRunPlan;
use super::route::{CompiledEdge, Consequence};
use crate::model::{Plane, Stage};

/// One drawn arrow: from a stage to a stage or terminal node.
struct Arrow {
    from: Stage,
    to: String,
    label: String,
    /// Taken only after an earlier budget is spent.
    fallback: bool,
}

/// Node id: the stage name, or `<plane>_end_<RESULT>` (terminal nodes are per plane).
fn node(plane: Plane, target: &Target) -> String {
    match target {
        Target::Terminal(result) => format!("{plane}_end_{result}"),
        Target::Stage(stage) => stage.to_string(),
    }
}

/// Every arrow of an edge: one per budgeted step, then the fallback.
fn arrows(edge: &CompiledEdge) -> Vec<Arrow> {
    let plane = edge.source_stage.plane();
    let result = edge.on_terminal_result;
    let mut out = Vec::new();
    let mut spent: Vec<&str> = Vec::new();
    let prefix = |spent: &[&str]| {
        if spent.is_empty() {
            result.to_string()
        } else {
            format!("{result}, {} spent", spent.join(" and "))
        }
    };
    for step in &edge.budgeted {
        out.push(Arrow {
            from: edge.source_stage,
            to: step.stage.to_string(),
            label: format!(
                "{} ({} max {})",
                prefix(&spent),
                step.budget_key,
                step.limit
            ),
            fallback: !spent.is_empty(),
        });
        spent.push(&step.budget_key);
    }
    out.push(Arrow {
        from: edge.source_stage,
        to: node(plane, &edge.then),
        label: prefix(&spent),
        fallback: !spent.is_empty(),
    });
    out
}

fn terminal_label(target: &Target) -> String {
    match target {
        Target::Terminal(result) => match Consequence::of(*result) {
            Some(c) => format!("{result}: {c}"),
            None => result.to_string(),
        },
        Target::Stage(stage) => stage.to_string(),
    }
}

/// Stages and terminal nodes of one plane, in plan order.
fn plane_nodes(plan: &FrozenRunPlan, plane: Plane) -> (Vec<Stage>, Vec<Target>) {
    let stages = plan
        .stage_plans
        .iter()
        .filter(|p| p.plane == plane)
        .map(|p| p.stage)
        .collect();
    let mut terminals = Vec::new();
    for edge in plan
        .routing
        .edges
        .iter()
        .filter(|e| e.source_stage.plane() == plane)
    {
        if matches!(edge.then, Target::Terminal(_)) && !terminals.contains(&edge.then) {
            terminals.push(edge.then);
        }
    }
    (stages, terminals)
}

fn loop_id(plan: &FrozenRunPlan, plane: Plane) -> &str {
    match plane {
        Plane::Execution => &plan.execution_loop_id,
        Plane::Planning => &plan.planning_loop_id,
    }
}

/// Entry arrows: one per work-item kind, plus the closure target into the completion stage.
fn entries(plan: &FrozenRunPlan) -> Vec<(String, String, Stage)> {
    let mut out: Vec<(String, String, Stage)> = plan
        .routing
        .entry_stages
        .iter()
        .map(|(kind, stage)| (format!("entry_{kind}"), kind.to_string(), *stage))
        .collect();
    if let Some(cb) = plan.completion_behavior() {
        out.push((
            "entry_closure_target".into(),
            "closure target".into(),
            cb.stage,
        ));
    }
    out
}

/// A Mermaid `flowchart`.
pub fn mermaid(plan: &FrozenRunPlan) -> String {
    let mut out = String::from("flowchart TD\n");
    for plane in Plane::ALL {
        let (stages, terminals) = plane_nodes(plan, plane);
        out.push_str(&format!(
            "  subgraph {plane}[\"{}\"]\n",
            loop_id(plan, plane)
        ));
        for stage in stages {
            out.push_str(&format!("    {stage}\n"));
        }
        for target in terminals {
            out.push_str(&format!(
                "    {}([\"{}\"])\n",
                node(plane, &target),
                terminal_label(&target)
            ));
        }
        out.push_str("  end\n");
    }
    for (id, label, stage) in entries(plan) {
        out.push_str(&format!("  {id}[/\"{label}\"/] --> {stage}\n"));
    }
    for edge in &plan.routing.edges {
        for arrow in arrows(edge) {
            let link = if arrow.fallback { "-.->" } else { "-->" };
            out.push_str(&format!(
                "  {} {link}|\"{}\"| {}\n",
                arrow.from, arrow.label, arrow.to
            ));
        }
    }
    out
}

/// A Graphviz `digraph`.
pub fn dot(plan: &FrozenRunPlan) -> String {
    let mut out = String::from("digraph millrace {\n  rankdir=TB;\n  node [shape=box];\n");
    for plane in Plane::ALL {
        let (stages, terminals) = plane_nodes(plan, plane);
        out.push_str(&format!(
            "  subgraph cluster_{plane} {{\n    label=\"{}\";\n",
            loop_id(plan, plane)
        ));
        for stage in stages {
            out.push_str(&format!("    {stage};\n"));
        }
        for target in terminals {
            out.push_str(&format!(
                "    {} [label=\"{}\", shape=oval];\n",
                node(plane, &target),
                terminal_label(&target)
            ));
        }
        out.push_str("  }\n");
    }
    for (id, label, stage) in entries(plan) {
        out.push_str(&format!(
            "  {id} [label=\"{label}\", shape=parallelogram];\n  {id} -> {stage};\n"
        ));
    }
    for edge in &plan.routing.edges {
        for arrow in arrows(edge) {
            let style = if arrow.fallback { ", style=dashed" } else { "" };
            out.push_str(&format!(
                "  {} -> {} [label=\"{}\"{style}];\n",
                arrow.from, arrow.to, arrow.label
            ));
        }
    }
    out.push_str("}\n");
    out
}
