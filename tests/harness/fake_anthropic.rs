//! The Anthropic Messages API as Claude Code calls it (`POST /v1/messages?beta=true`,
//! streamed as server-sent events), answering from a script: for each stage (read from the
//! prompt's `Stage: <name>` line) and turn (the number of assistant messages so far), one
//! [`Turn`].

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::server::{FakeApi, Reply, Request};

/// Tokens every answered turn reports (`message_start` and `message_delta` usage).
pub const INPUT: u64 = 100;
pub const OUTPUT: u64 = 20;
pub const CACHE_READ: u64 = 30;
pub const CACHE_WRITE: u64 = 40;

/// What the fake model does in one turn.
#[derive(Debug, Clone)]
pub enum Turn {
    /// Answer with this text and end the turn.
    Say(String),
    /// Call Claude Code's `Write` tool.
    Write { path: PathBuf, content: String },
    /// Call Claude Code's `Bash` tool.
    Bash(String),
    /// Answer with an API error: HTTP status, Anthropic error type, message.
    Fail(u16, &'static str, &'static str),
}

/// The stage's marker as the last line of a short answer.
pub fn done(marker: &str) -> Turn {
    Turn::Say(format!("Done.\n\n### {marker}\n"))
}

/// Start the fake API; `script(stage, turn)` decides each answer.
pub fn start(script: impl Fn(&str, usize) -> Turn + Send + Sync + 'static) -> FakeApi {
    FakeApi::start(move |req| answer(req, &script))
}

fn answer(req: &Request, script: &dyn Fn(&str, usize) -> Turn) -> Reply {
    if !req.path.starts_with("/v1/messages") || req.path.contains("count_tokens") {
        // Claude Code's reachability probe (`HEAD /`) and anything else it may ask.
        return Reply::Json {
            status: 200,
            body: json!({}),
        };
    }
    let body = req.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
    match script(&stage(&messages), turn) {
        Turn::Say(text) => stream(json!([{"type": "text", "text": text}]), "end_turn"),
        Turn::Write { path, content } => stream(
            json!([{"type": "tool_use", "id": format!("toolu_{turn}"), "name": "Write",
                    "input": {"file_path": path, "content": content}}]),
            "tool_use",
        ),
        Turn::Bash(command) => stream(
            json!([{"type": "tool_use", "id": format!("toolu_{turn}"), "name": "Bash",
                    "input": {"command": command, "description": "run the checks"}}]),
            "tool_use",
        ),
        Turn::Fail(status, kind, message) => Reply::Json {
            status,
            body: json!({"type": "error", "error": {"type": kind, "message": message}}),
        },
    }
}

/// The `Stage: <name>` line of the first user message (millrace's prompt), else "".
fn stage(messages: &[Value]) -> String {
    let first = messages.iter().find(|m| m["role"] == "user");
    let text = match first.map(|m| &m["content"]) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Stage: "))
        .unwrap_or("")
        .to_string()
}

/// One assistant message as the Messages API streams it.
fn stream(blocks: Value, stop_reason: &str) -> Reply {
    let mut events = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-fake",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": INPUT, "output_tokens": 1,
                      "cache_read_input_tokens": CACHE_READ,
                      "cache_creation_input_tokens": CACHE_WRITE}}}),
    )];
    for (index, block) in blocks.as_array().into_iter().flatten().enumerate() {
        let (start, delta) = match block["type"].as_str() {
            Some("text") => (
                json!({"type": "text", "text": ""}),
                json!({"type": "text_delta", "text": block["text"]}),
            ),
            _ => (
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
            ),
        };
        events.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": OUTPUT}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    Reply::Sse {
        status: 200,
        events,
    }
}

fn event(name: &str, data: Value) -> (Option<String>, String) {
    (Some(name.to_string()), data.to_string())
}

/// The environment pointing Claude Code at `api` from an isolated home under `home`: a dummy
/// key, no retries (failures show at once), no auto-update or other traffic.
pub fn env(home: &std::path::Path, api: &FakeApi) -> Vec<(String, String)> {
    let mut env = crate::cli::isolated(home);
    let config = home.join(".claude-config");
    std::fs::create_dir_all(&config).expect("claude config dir");
    env.extend(
        [
            ("CLAUDE_CONFIG_DIR", config.display().to_string()),
            ("ANTHROPIC_BASE_URL", api.base_url.clone()),
            ("ANTHROPIC_API_KEY", KEY.to_string()),
            ("CLAUDE_CODE_MAX_RETRIES", "0".to_string()),
            ("DISABLE_AUTOUPDATER", "1".to_string()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    env
}

/// The dummy API key the CLI is given (and must send).
pub const KEY: &str = "sk-ant-test-not-a-real-key";
