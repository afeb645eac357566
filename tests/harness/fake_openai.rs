//! The OpenAI Responses API as Codex CLI calls it (`POST /v1/responses`, streamed as
//! server-sent events), answering from a script: for each stage (read from the prompt's
//! `Stage: <name>` line) and turn (the number of tool results sent back so far), one [`Turn`].

use serde_json::{json, Value};

use crate::server::{FakeApi, Reply, Request};

/// Tokens every answered model call reports; Codex sums them over the turn.
pub const INPUT: u64 = 1000;
pub const CACHED: u64 = 200;
pub const OUTPUT: u64 = 40;
pub const REASONING: u64 = 10;

/// What the fake model does in one call.
#[derive(Debug, Clone)]
pub enum Turn {
    /// Answer with this text and end the turn.
    Say(String),
    /// Call Codex's `exec_command` tool with this shell command.
    Shell(String),
    /// Answer with an API error: HTTP status, error code, message.
    Fail(u16, &'static str, &'static str),
}

/// The stage's marker as the last line of a short answer.
pub fn done(marker: &str) -> Turn {
    Turn::Say(format!("Done.\n\n### {marker}"))
}

/// Start the fake API; `script(stage, turn)` decides each answer.
pub fn start(script: impl Fn(&str, usize) -> Turn + Send + Sync + 'static) -> FakeApi {
    FakeApi::start(move |req| answer(req, &script))
}

fn answer(req: &Request, script: &dyn Fn(&str, usize) -> Turn) -> Reply {
    if req.method != "POST" || !req.path.ends_with("/responses") {
        // Model lists and anything else Codex may ask for.
        return Reply::Json {
            status: 200,
            body: json!({"data": [], "models": []}),
        };
    }
    let body = req.json();
    let input = body["input"].as_array().cloned().unwrap_or_default();
    let turn = input
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .count();
    match script(&stage(&input), turn) {
        Turn::Say(text) => stream(
            json!({"type": "message", "role": "assistant", "id": format!("msg_{turn}"),
                   "content": [{"type": "output_text", "text": text}]}),
            turn,
        ),
        Turn::Shell(command) => stream(
            json!({"type": "function_call", "id": format!("fc_{turn}"),
                   "call_id": format!("call_{turn}"), "name": "exec_command",
                   "arguments": json!({"cmd": command}).to_string()}),
            turn,
        ),
        Turn::Fail(status, code, message) => Reply::Json {
            status,
            body: json!({"error": {"message": message, "type": code, "code": code}}),
        },
    }
}

/// The `Stage: <name>` line of the user's message (millrace's prompt), else "".
fn stage(input: &[Value]) -> String {
    input
        .iter()
        .filter(|i| i["role"] == "user")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|part| part["text"].as_str().map(str::to_string))
        .find_map(|text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("Stage: ").map(str::to_string))
        })
        .unwrap_or_default()
}

/// One model response with one output item, as the Responses API streams it.
fn stream(item: Value, turn: usize) -> Reply {
    let id = format!("resp_{turn}");
    let events = [
        json!({"type": "response.created", "response": {"id": id}}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        json!({"type": "response.completed", "response": {"id": id, "usage": {
            "input_tokens": INPUT, "input_tokens_details": {"cached_tokens": CACHED},
            "output_tokens": OUTPUT, "output_tokens_details": {"reasoning_tokens": REASONING},
            "total_tokens": INPUT + OUTPUT}}}),
    ];
    Reply::Sse {
        status: 200,
        events: events
            .into_iter()
            .map(|e| (e["type"].as_str().map(str::to_string), e.to_string()))
            .collect(),
    }
}

/// The environment pointing Codex at `api` from an isolated home under `home`: a provider of
/// its own in `$CODEX_HOME/config.toml` with a dummy key and no retries.
pub fn env(home: &std::path::Path, api: &FakeApi) -> Vec<(String, String)> {
    let mut env = crate::cli::isolated(home);
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).expect("codex home");
    let config = format!(
        "model = \"gpt-fake\"\nmodel_provider = \"fake\"\n\n[model_providers.fake]\nname = \"fake\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\nenv_key = \"FAKE_OPENAI_KEY\"\nrequest_max_retries = 0\nstream_max_retries = 0\n",
        api.base_url
    );
    std::fs::write(codex_home.join("config.toml"), config).expect("codex config");
    env.extend(
        [
            ("CODEX_HOME", codex_home.display().to_string()),
            ("FAKE_OPENAI_KEY", KEY.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    env
}

/// The dummy API key Codex is given.
pub const KEY: &str = "sk-test-not-a-real-key";

/// What the fake chat model answers to one `POST /v1/chat/completions` (Aider's API).
#[derive(Debug, Clone)]
pub enum Chat {
    /// Answer with this text (Aider applies the edit blocks in it).
    Say(String),
    /// Answer with an API error: HTTP status, error code, message.
    Fail(u16, &'static str, &'static str),
}

/// Tokens every chat answer reports.
pub const CHAT_PROMPT: u64 = 1500;
pub const CHAT_COMPLETION: u64 = 60;

/// Start an OpenAI-compatible chat completions API; `script(stage, turn)` decides each answer,
/// `turn` being the number of assistant messages already in the conversation.
pub fn start_chat(script: impl Fn(&str, usize) -> Chat + Send + Sync + 'static) -> FakeApi {
    FakeApi::start(move |req| chat_answer(req, &script))
}

fn chat_answer(req: &Request, script: &dyn Fn(&str, usize) -> Chat) -> Reply {
    if req.method != "POST" || !req.path.ends_with("/chat/completions") {
        return Reply::Json {
            status: 200,
            body: json!({"data": []}),
        };
    }
    let body = req.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
    let stage = messages
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| m["content"].as_str())
        .find_map(|text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("Stage: ").map(str::to_string))
        })
        .unwrap_or_default();
    let usage = json!({"prompt_tokens": CHAT_PROMPT, "completion_tokens": CHAT_COMPLETION,
                       "total_tokens": CHAT_PROMPT + CHAT_COMPLETION});
    match script(&stage, turn) {
        Chat::Fail(status, code, message) => Reply::Json {
            status,
            body: json!({"error": {"message": message, "type": code, "code": code}}),
        },
        Chat::Say(text) if body["stream"] == true => {
            let chunk = |delta: Value, finish: Value, usage: Option<&Value>| {
                let mut c = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                    "created": 1, "model": "gpt-fake",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
                if let Some(usage) = usage {
                    c["usage"] = usage.clone();
                }
                (None, c.to_string())
            };
            Reply::Sse {
                status: 200,
                events: vec![
                    chunk(
                        json!({"role": "assistant", "content": text}),
                        Value::Null,
                        None,
                    ),
                    chunk(json!({}), json!("stop"), Some(&usage)),
                    (None, "[DONE]".to_string()),
                ],
            }
        }
        Chat::Say(text) => Reply::Json {
            status: 200,
            body: json!({"id": "chatcmpl-fake", "object": "chat.completion", "created": 1,
                "model": "gpt-fake", "usage": usage,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]}),
        },
    }
}

/// The environment pointing Aider at `api` from an isolated home under `home`: the model,
/// a dummy key and the base URL through Aider's and litellm's own variables.
pub fn chat_env(home: &std::path::Path, api: &FakeApi) -> Vec<(String, String)> {
    let mut env = crate::cli::isolated(home);
    env.extend(
        [
            ("OPENAI_API_BASE", format!("{}/v1", api.base_url)),
            ("OPENAI_API_KEY", KEY.to_string()),
            ("AIDER_MODEL", "openai/gpt-fake".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    env
}
