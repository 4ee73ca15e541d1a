//! Random editing sessions against the server, in memory over the real transport: inserts
//! and deletes at random UTF-16 positions (past the ends of lines and of the text, between
//! the halves of surrogate pairs), whole-text replacements, stale versions and cancelled
//! requests. After every step the server's text equals the client's model, every range it
//! returns lies inside the document, and it has not crashed.
//!
//! The client's model is written independently of the server's: the text is a vector of
//! UTF-16 code units, edited the way the LSP specification describes.

mod support;

use proptest::prelude::*;
use serde_json::{Value, json};
use support::client::Client;

const URI: &str = "file:///session.nn";

/// The client's copy of the document.
#[derive(Clone, Debug)]
struct Model {
    units: Vec<u16>,
}

impl Model {
    fn new(text: &str) -> Model {
        Model { units: text.encode_utf16().collect() }
    }

    fn text(&self) -> String {
        String::from_utf16(&self.units).expect("the model never splits a surrogate pair")
    }

    /// `(start, end)` of each line's content, in code units, without its line break.
    fn lines(&self) -> Vec<(usize, usize)> {
        let (cr, lf) = (u16::from(b'\r'), u16::from(b'\n'));
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < self.units.len() {
            let unit = self.units[i];
            if unit == lf || unit == cr {
                lines.push((start, i));
                i += if unit == cr && self.units.get(i + 1) == Some(&lf) { 2 } else { 1 };
                start = i;
            } else {
                i += 1;
            }
        }
        lines.push((start, self.units.len()));
        lines
    }

    /// The index of a position: a line past the last is the end, a column past its line's
    /// end is the line's end, and a column between the halves of a pair is the pair's start.
    fn index(&self, line: u32, character: u32) -> usize {
        let lines = self.lines();
        let Some(&(start, end)) = lines.get(line as usize) else {
            return self.units.len();
        };
        let mut index = (start + character as usize).min(end);
        if index > start && index < end && is_low_surrogate(self.units[index]) {
            index -= 1;
        }
        index
    }

    fn edit(&mut self, range: Option<((u32, u32), (u32, u32))>, text: &str) {
        match range {
            None => self.units = text.encode_utf16().collect(),
            Some(((l1, c1), (l2, c2))) => {
                let (a, b) = (self.index(l1, c1), self.index(l2, c2));
                self.units.splice(a.min(b)..a.max(b), text.encode_utf16());
            }
        }
    }

    /// Whether `position` is a place a cursor can be in the document.
    fn inside(&self, position: &Value) -> bool {
        let (line, character) =
            (position["line"].as_u64().unwrap() as usize, position["character"].as_u64().unwrap() as usize);
        let lines = self.lines();
        let Some(&(start, end)) = lines.get(line) else {
            return false;
        };
        character <= end - start && (character == end - start || !is_low_surrogate(self.units[start + character]))
    }
}

fn is_low_surrogate(unit: u16) -> bool {
    (0xDC00..0xE000).contains(&unit)
}

/// One step of a session.
#[derive(Clone, Debug)]
enum Step {
    Edit {
        range: Option<((u32, u32), (u32, u32))>,
        text: String,
    },
    /// A change sent with a version that is not newer: the server must drop it.
    Stale {
        text: String,
    },
    /// A hover request cancelled right after it is sent.
    CancelledHover {
        line: u32,
        character: u32,
    },
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("model M(hidden = 4) {\n    input [B, 8]\n    linear(hidden)\n    relu\n}\n".to_string()),
        Just("linear(".to_string()),
        Just("conv2d(8, kernel = 3)\n".to_string()),
        Just("let größe = [1, 2]\n".to_string()),
        Just("/// 𝔸λ doc\n".to_string()),
        Just("\r\n".to_string()),
        Just("\n".to_string()),
        Just("}".to_string()),
        Just("𝔸".to_string()),
        Just("😀é".to_string()),
        Just("名前".to_string()),
        "[a-z(){}\\[\\], =\n]{0,6}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..6).prop_map(|parts| parts.concat())
}

fn position() -> impl Strategy<Value = (u32, u32)> {
    (0u32..12, 0u32..30)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (position(), text()).prop_map(|(at, text)| Step::Edit { range: Some((at, at)), text }),
        4 => (position(), position()).prop_map(|(a, b)| Step::Edit { range: Some((a, b)), text: String::new() }),
        3 => (position(), position(), text()).prop_map(|(a, b, text)| Step::Edit { range: Some((a, b)), text }),
        1 => text().prop_map(|text| Step::Edit { range: None, text }),
        1 => text().prop_map(|text| Step::Stale { text }),
        1 => position().prop_map(|(line, character)| Step::CancelledHover { line, character }),
    ]
}

/// Checks every position in what the server returned for the document.
fn check_ranges(model: &Model, what: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            for key in ["start", "end", "position"] {
                if let Some(position) = map.get(key).filter(|p| p.get("line").is_some() && p.get("character").is_some())
                {
                    assert!(model.inside(position), "{what}: {position} is outside {:?}", model.text());
                }
            }
            for (key, inner) in map {
                if !matches!(key.as_str(), "start" | "end" | "position") {
                    check_ranges(model, what, inner);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| check_ranges(model, what, item)),
        _ => {}
    }
}

/// Decodes semantic tokens and checks that each lies on one line of the document.
fn check_semantic_tokens(model: &Model, tokens: &Value) {
    let data: Vec<u64> = tokens["data"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let lines = model.lines();
    let (mut line, mut column) = (0, 0);
    for token in data.chunks(5) {
        line += token[0] as usize;
        column = if token[0] == 0 { column + token[1] as usize } else { token[1] as usize };
        let (start, end) = lines[line];
        assert!(column + token[2] as usize <= end - start, "a token past the end of line {line}");
    }
}

async fn run_session(initial: String, steps: Vec<Step>) {
    let mut client = Client::start().await;
    client.request("initialize", json!({"processId": null, "rootUri": null, "capabilities": {}})).await;
    client.notify("initialized", json!({})).await;
    let mut model = Model::new(&initial);
    let mut version = 1;
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": URI, "languageId": "nn", "version": version, "text": initial}}),
        )
        .await;
    for step in steps {
        let edited = matches!(step, Step::Edit { .. });
        match step {
            Step::Edit { range, text } => {
                version += 1;
                let range_json = range.map(|((l1, c1), (l2, c2))| {
                    json!({"start": {"line": l1, "character": c1}, "end": {"line": l2, "character": c2}})
                });
                let change = match range_json {
                    Some(range) => json!({"range": range, "text": text}),
                    None => json!({"text": text}),
                };
                client
                    .notify(
                        "textDocument/didChange",
                        json!({"textDocument": {"uri": URI, "version": version}, "contentChanges": [change]}),
                    )
                    .await;
                model.edit(range, &text);
            }
            Step::Stale { text } => {
                client
                    .notify(
                        "textDocument/didChange",
                        json!({"textDocument": {"uri": URI, "version": version - 1}, "contentChanges": [{"text": text}]}),
                    )
                    .await;
            }
            Step::CancelledHover { line, character } => {
                let params = json!({"textDocument": {"uri": URI}, "position": {"line": line, "character": character}});
                let id = client.send_request("textDocument/hover", params).await;
                client.notify("$/cancelRequest", json!({"id": id})).await;
                let response = client.wait(|m| m["id"] == json!(id) && m.get("method").is_none()).await;
                let cancelled = response["error"]["code"] == json!(-32800);
                assert!(cancelled || response.get("error").is_none(), "{response}");
                if let Some(result) = response.get("result") {
                    check_ranges(&model, "hover", result);
                }
            }
        }
        // A request answered means every message before it was read and applied.
        let whole = json!({"start": {"line": 0, "character": 0}, "end": {"line": 1000, "character": 0}});
        let hints =
            client.request("textDocument/inlayHint", json!({"textDocument": {"uri": URI}, "range": whole})).await;
        let (server_version, server_text) = client.documents.text(&URI.parse().unwrap()).expect("the document is open");
        assert_eq!((server_version, server_text.as_str()), (version, model.text().as_str()));
        check_ranges(&model, "inlay hints", &hints);
        let symbols = client.request("textDocument/documentSymbol", json!({"textDocument": {"uri": URI}})).await;
        check_ranges(&model, "symbols", &symbols);
        let tokens = client.request("textDocument/semanticTokens/full", json!({"textDocument": {"uri": URI}})).await;
        check_semantic_tokens(&model, &tokens);
        let folds = client.request("textDocument/foldingRange", json!({"textDocument": {"uri": URI}})).await;
        let line_count = model.lines().len() as u64;
        for fold in folds.as_array().unwrap() {
            assert!(fold["endLine"].as_u64().unwrap() < line_count, "{fold}");
        }
        // Diagnostics come for each version the server applied; stale changes make none.
        if edited {
            let diagnostics = client
                .wait(|m| m["method"] == "textDocument/publishDiagnostics" && m["params"]["version"] == json!(version))
                .await;
            check_ranges(&model, "diagnostics", &diagnostics["params"]["diagnostics"]);
        }
    }
    assert_eq!(client.request("shutdown", Value::Null).await, Value::Null);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_edit_sessions_keep_the_server_in_step(initial in text(), steps in prop::collection::vec(step(), 1..16)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run_session(initial, steps));
    }
}

#[test]
fn the_model_of_the_test_edits_as_the_specification_says() {
    let mut model = Model::new("a𝔸b\r\nc");
    // Inside the surrogate pair: the pair's start. Past the line's end: before `\r\n`.
    model.edit(Some(((0, 2), (0, 99))), "!");
    assert_eq!(model.text(), "a!\r\nc");
    model.edit(Some(((5, 0), (5, 0))), "?");
    assert_eq!(model.text(), "a!\r\nc?");
}
