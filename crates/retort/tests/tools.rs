//! Tool calls through a whole run, as a user of function-calling data has them: OpenAI
//! rows (with `tools`, `tool_calls`, tool results) and ShareGPT-with-tools rows are
//! loaded, a `generate` step offers each record's tools to a teacher (the mock, which
//! calls one with arguments valid for its schema), and the `messages` and `sharegpt`
//! exports with `tools = true` are read back by pyarrow, by TRL's own helpers with a
//! chat template that renders tools, and by `load` again, which must give back the same
//! rows. Without `tools = true` a record with tool calls is a failure row, never written
//! stripped.

mod common;

use common::*;

const ROWS: &str = r#"{"id": "w1", "messages": [{"role": "user", "content": "What is the weather in Oslo? Use get_weather."}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}}}}, {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "required": ["tz"], "properties": {"tz": {"type": "string"}}}}}]}
{"id": "w2", "messages": [{"role": "system", "content": "You call tools."}, {"role": "user", "content": "Time in Tokyo? get_time please."}], "tools": "[{\"type\": \"function\", \"function\": {\"name\": \"get_time\", \"parameters\": {\"type\": \"object\", \"required\": [\"tz\"], \"properties\": {\"tz\": {\"type\": \"string\"}}}}}]"}
{"id": "w3", "messages": [{"role": "user", "content": "Weather in Rome?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]}, {"role": "tool", "tool_call_id": "call_0", "name": "get_weather", "content": "{\"temp\": 21}"}, {"role": "user", "content": "And in Paris? get_weather"}], "tools": [{"name": "get_weather", "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}]}
"#;

const SHAREGPT: &str = r#"{"id": "g1", "conversations": [{"from": "human", "value": "Weather in Lima?"}, {"from": "function_call", "value": "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}"}, {"from": "observation", "value": "{\"temp\": 18}"}, {"from": "gpt", "value": "It is 18 degrees in Lima."}], "tools": "[{\"name\": \"get_weather\", \"description\": \"Current weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}]"}
"#;

fn pipeline(base: &str) -> String {
    format!(
        r#"
name = "tools"
[teachers.api]
provider = "openai"
base_url = "{base}"
model = "mock-model"
retry_base_ms = 5
[[step]]
id = "rows"
kind = "load"
path = "rows.jsonl"
[[step]]
id = "calls"
kind = "generate"
after = ["rows"]
teacher = "api"
tools = "record"
prompt = "{{{{ prompt }}}}"
[[step]]
id = "chat"
kind = "export"
after = ["calls"]
format = "messages"
tools = true
paths = ["chat.parquet", "chat.jsonl"]
[[step]]
id = "plain"
kind = "export"
after = ["calls"]
format = "messages"
path = "plain.jsonl"
[[step]]
id = "gpt"
kind = "load"
path = "sharegpt.jsonl"
[[step]]
id = "gpt_out"
kind = "export"
after = ["gpt"]
format = "sharegpt"
tools = true
dataset_info = true
path = "sharegpt_out.jsonl"
"#
    )
}

#[test]
fn tool_calls_round_trip_load_generate_export() {
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        call_tools: true,
        ..Default::default()
    });
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "rows.jsonl", ROWS);
    write(d.path(), "sharegpt.jsonl", SHAREGPT);
    write(d.path(), "p.toml", &pipeline(&mock.base_url()));
    let o = run(&["run", "p.toml", "--out", "out"], d.path());
    assert!(o.status.success(), "run failed: {}", text(&o));
    let out = d.path().join("out");

    // Each record's new assistant turn calls the tool its prompt names, with arguments
    // valid for that tool; the loaded tool call and result of w3 are kept.
    let got = py(&format!(
        r#"import pyarrow.parquet as pq, json
t = {{r['id']: r for r in pq.read_table('{p}').to_pylist()}}
for i in sorted(t):
    m = t[i]['messages']
    last = m[-1]
    assert last['role'] == 'assistant' and last['content'] == '', last
    calls = last['tool_calls']
    assert len(calls) == 1 and calls[0]['type'] == 'function', calls
    args = json.loads(calls[0]['function']['arguments'])
    tools = json.loads(t[i]['tools'])
    assert all(x['type'] == 'function' for x in tools), tools
    print(i, calls[0]['function']['name'], sorted(args), [x['function']['name'] for x in tools], [x['role'] for x in m])
w3 = t['w3']['messages']
assert w3[1]['tool_calls'][0]['id'] == 'call_0' and json.loads(w3[1]['tool_calls'][0]['function']['arguments']) == {{'city': 'Rome'}}, w3[1]
assert w3[2]['tool_call_id'] == 'call_0' and w3[2]['name'] == 'get_weather' and w3[2]['content'] == '{{"temp": 21}}', w3[2]
"#,
        p = out.join("chat.parquet").display()
    ));
    assert_eq!(
        got,
        "w1 get_weather ['city', 'unit'] ['get_weather', 'get_time'] ['user', 'assistant']\n\
         w2 get_time ['tz'] ['get_time'] ['system', 'user', 'assistant']\n\
         w3 get_weather ['city'] ['get_weather'] ['user', 'assistant', 'tool', 'user', 'assistant']"
    );

    // TRL: the tools column is what SFTTrainer json.loads, the chat template renders the
    // definitions and the calls.
    let check = repo_root().join("tests/consumer/check_trl.py");
    for f in ["chat.parquet", "chat.jsonl"] {
        let o = std::process::Command::new("python3")
            .arg(&check)
            .arg(format!("tools:{}", out.join(f).display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "TRL check of {f}: {}", text(&o));
    }

    // Without tools = true nothing is written stripped: every record is a failure row
    // that says which option keeps it.
    let plain = std::fs::read_to_string(out.join("plain.jsonl")).unwrap();
    assert_eq!(
        plain, "",
        "records with tool calls were written without them"
    );
    let failures = py(&format!(
        "import pyarrow.parquet as pq\n\
         t=[r for r in pq.read_table('{}').to_pylist() if r['step']=='plain']\n\
         print(len(t), all('tools = true' in r['message'] for r in t))",
        out.join("failures.parquet").display()
    ));
    assert_eq!(failures, "3 True");

    // ShareGPT-with-tools in and out: function_call / observation turns, tools as JSON
    // text, and a LLaMA-Factory entry that names them.
    let gpt = std::fs::read_to_string(out.join("sharegpt_out.jsonl")).unwrap();
    let row: serde_json::Value = serde_json::from_str(gpt.lines().next().unwrap()).unwrap();
    let froms: Vec<&str> = row["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["from"].as_str().unwrap())
        .collect();
    assert_eq!(froms, ["human", "function_call", "observation", "gpt"]);
    let call: serde_json::Value =
        serde_json::from_str(row["conversations"][1]["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        call,
        serde_json::json!({"name": "get_weather", "arguments": {"city": "Lima"}})
    );
    let tools: serde_json::Value = serde_json::from_str(row["tools"].as_str().unwrap()).unwrap();
    assert_eq!(tools[0]["function"]["name"], "get_weather");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("dataset_info.json")).unwrap()).unwrap();
    assert_eq!(info["sharegpt_out"]["columns"]["tools"], "tools");
    assert_eq!(
        info["sharegpt_out"]["tags"]["function_tag"],
        "function_call"
    );

    // The export loads back into the same records: exporting them again gives the
    // same bytes.
    write(
        d.path(),
        "again.toml",
        r#"
name = "again"
[[step]]
id = "back"
kind = "load"
path = "out/chat.jsonl"
[[step]]
id = "chat"
kind = "export"
after = ["back"]
format = "messages"
tools = true
path = "chat.jsonl"
"#,
    );
    let o = run(&["run", "again.toml", "--out", "again"], d.path());
    assert!(o.status.success(), "reload failed: {}", text(&o));
    assert_eq!(
        std::fs::read_to_string(d.path().join("again/chat.jsonl")).unwrap(),
        std::fs::read_to_string(out.join("chat.jsonl")).unwrap()
    );
}
