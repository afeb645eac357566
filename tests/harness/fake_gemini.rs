//! The Gemini API as Gemini CLI calls it (`POST /v1beta/models/<model>:streamGenerateContent
//! ?alt=sse`, and `:generateContent` for its model router), answering from a script: for each
//! stage (read from the prompt's `Stage: <name>` line) and turn (the number of model turns so
//! far), one [`Turn`]. The router's "how complex is this" question always gets a low score.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::server::{FakeApi, Reply, Request};

/// Tokens every answered main turn reports (`usageMetadata`; the prompt count includes the
/// cached part).
pub const PROMPT: u64 = 120;
pub const CANDIDATES: u64 = 15;
pub const CACHED: u64 = 50;
pub const THOUGHTS: u64 = 10;
/// Tokens each answer of the model router reports.
pub const ROUTER_PROMPT: u64 = 7;
pub const ROUTER_CANDIDATES: u64 = 3;

/// What the fake model does in one turn.
#[derive(Debug, Clone)]
pub enum Turn {
    /// Answer with this text and stop.
    Say(String),
    /// Call Gemini CLI's `write_file` tool.
    Write { path: PathBuf, content: String },
    /// Call Gemini CLI's `run_shell_command` tool.
    Shell(String),
    /// Answer with an API error: HTTP status, Google status, message, extra `details`.
    Fail(u16, &'static str, &'static str, Value),
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
    let body = req.json();
    let streamed = req.path.contains(":streamGenerateContent");
    if !streamed && !req.path.contains(":generateContent") {
        return Reply::Json {
            status: 200,
            body: json!({"totalTokens": 1}),
        };
    }
    let schema = body["generationConfig"]["responseJsonSchema"].to_string();
    if schema.contains("complexity_score") {
        let score = json!({"complexity_reasoning": "a small change", "complexity_score": 10});
        return reply(
            streamed,
            json!([{"text": score.to_string()}]),
            json!({"promptTokenCount": ROUTER_PROMPT, "candidatesTokenCount": ROUTER_CANDIDATES,
                   "totalTokenCount": ROUTER_PROMPT + ROUTER_CANDIDATES}),
        );
    }
    let contents = body["contents"].as_array().cloned().unwrap_or_default();
    let turn = contents.iter().filter(|c| c["role"] == "model").count();
    let usage = json!({"promptTokenCount": PROMPT, "candidatesTokenCount": CANDIDATES,
                       "cachedContentTokenCount": CACHED, "thoughtsTokenCount": THOUGHTS,
                       "totalTokenCount": PROMPT + CANDIDATES + THOUGHTS});
    match script(&stage(&contents), turn) {
        Turn::Say(text) => reply(streamed, json!([{"text": text}]), usage),
        Turn::Write { path, content } => reply(
            streamed,
            json!([{"functionCall": {"name": "write_file",
                                     "args": {"file_path": path, "content": content}}}]),
            usage,
        ),
        Turn::Shell(command) => reply(
            streamed,
            json!([{"functionCall": {"name": "run_shell_command",
                                     "args": {"command": command, "description": "run the checks"}}}]),
            usage,
        ),
        Turn::Fail(code, status, message, details) => Reply::Json {
            status: code,
            body: json!({"error": {"code": code, "message": message, "status": status,
                                   "details": details}}),
        },
    }
}

/// The `Stage: <name>` line in the user's turns (millrace's prompt), else "".
fn stage(contents: &[Value]) -> String {
    contents
        .iter()
        .filter(|c| c["role"] == "user")
        .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .find_map(|l| l.trim().strip_prefix("Stage: ").map(str::to_string))
        .unwrap_or_default()
}

/// One candidate with `parts`, finished, as one SSE chunk or one JSON body.
fn reply(streamed: bool, parts: Value, usage: Value) -> Reply {
    let chunk = json!({
        "candidates": [{"content": {"role": "model", "parts": parts},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": "gemini-fake",
    });
    match streamed {
        true => Reply::Sse {
            status: 200,
            events: vec![(None, chunk.to_string())],
        },
        false => Reply::Json {
            status: 200,
            body: chunk,
        },
    }
}

/// The environment pointing Gemini CLI at `api` from an isolated home under `home`: a dummy
/// key, API-key auth and a single attempt per request chosen in its settings, no usage
/// statistics or telemetry.
pub fn env(home: &std::path::Path, api: &FakeApi) -> Vec<(String, String)> {
    let mut env = crate::cli::isolated(home);
    let settings = json!({
        "general": {"maxAttempts": 1},
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
    });
    let dir = home.join(".gemini");
    std::fs::create_dir_all(&dir).expect("gemini settings dir");
    std::fs::write(dir.join("settings.json"), settings.to_string()).expect("gemini settings");
    env.extend(
        [
            ("GOOGLE_GEMINI_BASE_URL", api.base_url.clone()),
            ("GEMINI_API_KEY", KEY.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    env
}

/// The dummy API key the CLI is given (and must send).
pub const KEY: &str = "gemini-test-not-a-real-key";
