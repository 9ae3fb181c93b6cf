//! Opens the rendered demo report in headless Chromium: takes a screenshot, dumps the
//! DOM after scripts ran, and checks the map, the tables, the dedup section and that a
//! `<script>` inside a record stayed inert text.
//!
//! Needs Chromium (`apt-get install chromium`); set `RETORT_CHROMIUM` to use another
//! binary. Set `RETORT_REPORT_SCREENSHOT=path.png` to keep the screenshot (that is how
//! `docs/report-example.png` is made).

use retort_report::demo::{MALICIOUS_ID, MALICIOUS_TEXT};
use retort_report::{demo_input, escape_html, render};

mod chromium;
use chromium::run_chromium;

#[test]
fn demo_report_renders_in_headless_chromium_and_record_scripts_stay_inert() {
    let input = demo_input(42);
    let html = render(&input);
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).expect("write report");

    // The file is self-contained: the only URL in it is the SVG namespace.
    let urls = html.matches("http://").count() + html.matches("https://").count();
    let svg_ns = html.matches("http://www.w3.org/2000/svg").count();
    assert_eq!(
        urls, svg_ns,
        "the report references something on the network"
    );

    // Screenshot.
    let png = dir.path().join("report.png");
    run_chromium(
        &page,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1400,2400".to_string(),
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote no screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1400, 2400), "screenshot size");
    // A blank or error page of this size compresses to a few KB; the report is far busier.
    assert!(
        bytes.len() > 60_000,
        "screenshot is only {} bytes: did the page render?",
        bytes.len()
    );
    if let Some(keep) = std::env::var_os("RETORT_REPORT_SCREENSHOT") {
        std::fs::copy(&png, &keep).expect("copy screenshot");
    }

    // The DOM after scripts ran.
    let out = run_chromium(&page, &["--dump-dom".to_string()]);
    let dom = String::from_utf8(out.stdout).expect("DOM is UTF-8");
    assert!(
        dom.contains(r#"data-report-ready="1""#),
        "the report's own script did not run, so the XSS checks below would prove nothing"
    );
    for id in [
        "summary",
        "map",
        "clusters",
        "examples",
        "duplicates",
        "records",
    ] {
        assert!(
            dom.contains(&format!(r#"<section id="{id}">"#)),
            "section #{id} missing"
        );
    }
    assert_eq!(
        dom.matches(r#"<circle class="pt""#).count(),
        input.records.len(),
        "one map point per record"
    );
    assert_eq!(
        dom.matches(r#"<tr class="cl-row""#).count(),
        input.clusters.len(),
        "one cluster-table row per cluster"
    );
    assert_eq!(
        dom.matches(r#"<tr class="dup-row""#).count(),
        input.duplicates.len(),
        "one dedup row per removed record"
    );
    assert_eq!(
        dom.matches(r#"<article class="cluster-card""#).count(),
        input.clusters.len(),
        "examples for every cluster"
    );
    // Histograms: one per cluster per score, plus the all-records row.
    assert_eq!(
        dom.matches(r#"<svg class="hist""#).count(),
        (input.clusters.len() + 1) * 2
    );

    // The hostile record did not run: its markers are built by string concatenation and
    // would only appear if its code executed.
    assert!(
        !dom.contains("PWNED"),
        "a record's script changed the page title"
    );
    assert!(
        !dom.contains("xss-marker"),
        "a record's script added an element"
    );
    assert!(!dom.contains("xss-img"), "a record's onerror handler ran");
    assert_eq!(
        dom.matches("<script").count(),
        2,
        "only the report's own script and its inert explorer data block exist"
    );
    assert_eq!(
        dom.matches(r#"<script type="application/json" id="explorer-data">"#)
            .count(),
        1
    );
    assert!(!dom.contains("<img"), "record text became an <img> element");
    // …and it is shown as text where a reader expects it.
    assert!(dom.contains(MALICIOUS_ID));
    assert!(
        dom.contains("&lt;script&gt;document.title='PWN'+'ED';"),
        "the record's script is not visible as text"
    );
    assert!(dom.contains("&lt;img src=x onerror="));
    // The hover title of the hostile point holds the escaped text.
    let first_chars: String = MALICIOUS_TEXT.chars().take(60).collect();
    let escaped = escape_html(&first_chars).replace("&#39;", "'");
    assert!(
        dom.contains(&escaped),
        "hover text of the hostile record missing: {escaped}"
    );
}
