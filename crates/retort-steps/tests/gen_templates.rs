//! Snapshots of every generation prompt as the teacher receives it (rendered and
//! trimmed by the steps' `gen_common::render`). A template edit shows up as a snapshot
//! diff to review.

use retort_steps::gen_common::render;
use retort_steps::templates::Template;
use serde_json::json;

fn r(name: &str, vars: serde_json::Value) -> String {
    let t = Template::load(name, std::path::Path::new(".")).unwrap();
    render(&t, vars).unwrap()
}

#[test]
fn alpaca_generate() {
    let demos = json!([
        {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well, sleep, move."},
        {"instruction": "Translate the sentence into French.", "input": "Good morning.", "output": "Bonjour."},
        {"instruction": "Classify the sentiment of the review.", "input": "I loved it.", "output": "positive"},
    ]);
    insta::assert_snapshot!(
        "alpaca_generate",
        r(
            "alpaca_generate",
            json!({"demos": demos, "num_tasks": 10, "start": 4, "language": null})
        )
    );
    insta::assert_snapshot!(
        "alpaca_generate_chinese",
        r(
            "alpaca_generate",
            json!({"demos": demos, "num_tasks": 5, "start": 4, "language": "Chinese"})
        )
    );
}

#[test]
fn classic_templates() {
    let demos = json!([
        "Give three tips for staying healthy.",
        "请把下面的句子翻译成英文。",
        "Sort the list."
    ]);
    insta::assert_snapshot!(
        "classic_instructions",
        r(
            "classic_instructions",
            json!({"demos": demos, "num_tasks": 8, "start": 4, "language": null})
        )
    );
    insta::assert_snapshot!(
        "classic_is_classification",
        r(
            "classic_is_classification",
            json!({"instruction": "Is the email spam?"})
        )
    );
    insta::assert_snapshot!(
        "classic_instances_input_first",
        r(
            "classic_instances_input_first",
            json!({"instruction": "Suggest a name for a bakery.", "max_instances": 5, "language": null})
        )
    );
    insta::assert_snapshot!(
        "classic_instances_output_first",
        r(
            "classic_instances_output_first",
            json!({"instruction": "Is the email spam?", "max_instances": 5, "language": "Chinese"})
        )
    );
}

#[test]
fn self_chat_templates() {
    insta::assert_snapshot!(
        "baize_chat",
        r(
            "baize_chat",
            json!({"topic": "how comets get their tails", "max_turns": 4, "language": null})
        )
    );
    insta::assert_snapshot!(
        "dual_user_opening",
        r(
            "dual_user",
            json!({"topic": "volcanoes", "history": [], "end_marker": "<end>", "language": null})
        )
    );
    insta::assert_snapshot!(
        "dual_user_follow_up",
        r(
            "dual_user",
            json!({"topic": "volcanoes", "end_marker": "<end>", "language": "Chinese", "history": [
                {"role": "user", "content": "How do volcanoes form?"},
                {"role": "assistant", "content": "Magma rises through the crust."},
            ]})
        )
    );
    insta::assert_snapshot!(
        "dual_assistant_system",
        r(
            "dual_assistant_system",
            json!({"topic": "volcanoes", "language": null})
        )
    );
}

#[test]
fn evol_templates() {
    for m in [
        "constraints",
        "deepen",
        "concretize",
        "reasoning",
        "complicate_input",
    ] {
        insta::assert_snapshot!(
            format!("evol_in_depth_{m}"),
            r(
                "evol_in_depth",
                json!({"instruction": "Sort the list: 3, 1, 2.", "method": m, "language": null})
            )
        );
    }
    insta::assert_snapshot!(
        "evol_in_breadth",
        r(
            "evol_in_breadth",
            json!({"instruction": "Sort the list: 3, 1, 2.", "language": null})
        )
    );
    assert!(
        Template::load("evol_in_depth", std::path::Path::new("."))
            .unwrap()
            .render(json!({"instruction": "x", "method": "nonsense", "language": null}))
            .is_err(),
        "an unknown method must not render a prompt without a method"
    );
}

#[test]
fn respond_system() {
    insta::assert_snapshot!(
        "respond_system",
        r(
            "respond_system",
            json!({"prompt": "Say hi.", "language": "en"})
        )
    );
    insta::assert_snapshot!(
        "respond_system_zh",
        r(
            "respond_system",
            json!({"prompt": "你好", "language": "zh"})
        )
    );
}
