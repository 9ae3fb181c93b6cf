//! Teacher client against the mock server on 127.0.0.1: no lost requests under
//! injected errors, rate limits, Retry-After, circuit breaker, cache, secrets,
//! Anthropic shape and endpoint pools.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use regex::Regex;
use retort_core::Message;
use retort_mock::{ErrorRule, Injected, MockConfig, MockServer, RetryAfterStyle};
use retort_teacher::*;

fn cfg(base: &str) -> TeacherConfig {
    let mut c = TeacherConfig::new(Provider::Openai, "mock-model");
    c.base_url = Some(base.to_string());
    c.retry_base_ms = 20;
    c.retry_max_ms = 200;
    c.timeout_secs = 2.0;
    c
}

fn shared(cache: Option<Arc<ResponseCache>>, read: bool) -> Arc<Shared> {
    Arc::new(Shared::new(cache, read, Arc::new(Accounting::new(None))))
}

fn client(c: &TeacherConfig, s: &Arc<Shared>) -> Arc<Client> {
    Arc::new(Client::new("t", c, http_backend(c).unwrap(), s.clone()))
}

fn req(text: impl Into<String>) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(text)],
        max_tokens: Some(64),
        ..Default::default()
    }
}

fn refused_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/v1")
}

async fn no_loss_at(rate: f64) {
    let each = rate / 6.0;
    let mock = MockServer::start(MockConfig {
        rate_429: each,
        retry_after_ms: 50,
        rate_500: each,
        rate_hang: each,
        hang_for: Duration::from_secs(5),
        rate_truncated: each,
        rate_invalid: each,
        rate_length: each,
        seed: (rate * 1000.0) as u64,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut c = cfg(&mock.base_url());
    c.timeout_secs = 0.5;
    c.max_in_flight = 32;
    c.max_retries = 3;
    let s = shared(None, true);
    let cl = client(&c, &s);
    let n = 300;
    let results = join_all((0..n).map(|i| {
        let cl = cl.clone();
        async move {
            let opts = CallOptions {
                require_complete: true,
            };
            (
                i,
                cl.chat_with("gen", req(format!("prompt {i}")), opts).await,
            )
        }
    }))
    .await;
    assert_eq!(results.len(), n);
    let mut ok = 0;
    let mut failed = 0;
    for (i, r) in &results {
        match r {
            Ok(a) => {
                // Every answer belongs to its own prompt: nothing swapped, nothing defaulted.
                assert_eq!(a.content, format!("echo: prompt {i}"));
                assert_eq!(a.finish_reason, FinishReason::Stop);
                ok += 1;
            }
            Err(e) => {
                assert!(
                    [
                        "truncated",
                        "http_429",
                        "http_5xx",
                        "timeout",
                        "bad_response"
                    ]
                    .contains(&e.class()),
                    "unexpected error class {} ({e})",
                    e.class()
                );
                failed += 1;
            }
        }
    }
    let snap = s.accounting.snapshot();
    let t = &snap.total;
    assert_eq!(t.calls, n as u64);
    assert_eq!(t.failures, failed);
    assert_eq!(ok + failed, n as u64);
    assert_eq!(
        t.requests,
        mock.chat_requests(),
        "client and server disagree"
    );
    assert!(t.retries > 0, "errors were injected, retries expected");
    // Only truncation (not retried by design) and the rare 4-in-a-row failure remain.
    assert!(ok as f64 >= n as f64 * (1.0 - rate), "{ok} ok of {n}");
    assert!(!cl.stats().breaker_open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_lost_at_5_percent_injected_errors() {
    no_loss_at(0.05).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_lost_at_20_percent_injected_errors() {
    no_loss_at(0.20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timestamps_never_exceed_rpm() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut c = cfg(&mock.base_url());
    c.requests_per_minute = Some(600);
    c.max_in_flight = 16;
    let cl = client(&c, &shared(None, true));
    let n = 25;
    let rs = join_all((0..n).map(|i| cl.chat("s", req(format!("r{i}"))))).await;
    assert!(rs.iter().all(|r| r.is_ok()));
    let times: Vec<Instant> = mock.log().iter().map(|l| l.at).collect();
    assert_eq!(times.len(), n);
    // 600/min: burst 1, then one per 60/599 s. Any 1 s window holds ≤ 1 + 9.98 requests
    // (+1 for arrival jitter at the server).
    for t in &times {
        let w = times
            .iter()
            .filter(|u| **u >= *t && u.duration_since(*t) < Duration::from_secs(1))
            .count();
        assert!(w <= 12, "{w} requests within one second at 600/min");
    }
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(
        span >= Duration::from_secs_f64((n - 2) as f64 * 60.0 / 599.0),
        "{n} requests in {span:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timestamps_never_exceed_tpm() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut c = cfg(&mock.base_url());
    // Each request: 40 chars → 10 tokens + max_tokens 90 = 100 estimated tokens.
    c.tokens_per_minute = Some(60_000);
    c.max_in_flight = 16;
    let cl = client(&c, &shared(None, true));
    let n = 25;
    let rs = join_all((0..n).map(|i| {
        let mut r = req(format!("{i:0>40}"));
        r.max_tokens = Some(90);
        assert_eq!(estimate_tokens(&r), 100);
        cl.chat("s", r)
    }))
    .await;
    assert!(rs.iter().all(|r| r.is_ok()));
    let times: Vec<Instant> = mock.log().iter().map(|l| l.at).collect();
    // 60,000/min = burst 50 + 999 tokens/s: ≤ 10.5 requests of 100 tokens per second
    // (+1 for arrival jitter).
    for t in &times {
        let w = times
            .iter()
            .filter(|u| **u >= *t && u.duration_since(*t) < Duration::from_secs(1))
            .count();
        assert!(
            w <= 12,
            "{w} requests (×100 tokens) within one second at 60k TPM"
        );
    }
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(
        span >= Duration::from_secs_f64(((n - 1) * 100 - 100) as f64 / 999.0),
        "{n} requests in {span:?}"
    );
}

async fn retry_after_case(style: RetryAfterStyle, asked_ms: u64) {
    let mock = MockServer::start(MockConfig {
        latency: Duration::from_millis(20),
        error_rules: vec![ErrorRule {
            pattern: Regex::new("^slow$").unwrap(),
            times: 1,
            error: Injected::TooMany {
                retry_after_ms: asked_ms,
                style,
            },
        }],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut c = cfg(&mock.base_url());
    c.max_in_flight = 4;
    let cl = client(&c, &shared(None, true));
    let slow = {
        let cl = cl.clone();
        tokio::spawn(async move { cl.chat("s", req("slow")).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let fast = join_all((0..40).map(|i| cl.chat("s", req(format!("fast {i}"))))).await;
    let fast_done = Instant::now();
    assert!(fast.iter().all(|r| r.is_ok()));
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.content, "echo: slow");
    let log = mock.log();
    let slow_hits: Vec<_> = log.iter().filter(|l| l.last_user == "slow").collect();
    assert_eq!(slow_hits.len(), 2, "one 429, one retry");
    assert_eq!(slow_hits[0].status, 429);
    let waited = slow_hits[1].at - slow_hits[0].at;
    assert!(
        waited >= Duration::from_millis(asked_ms),
        "retried after {waited:?}, server asked {asked_ms} ms"
    );
    // The 40 other requests did not wait for it.
    assert!(
        fast_done < slow_hits[1].at,
        "other requests were held up by the one sitting out Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_seconds_is_honoured_without_holding_up_others() {
    retry_after_case(RetryAfterStyle::Seconds, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_ms_is_honoured_without_holding_up_others() {
    retry_after_case(RetryAfterStyle::Millis, 700).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_endpoint_pauses_calls_then_stops_them_past_max_outage() {
    let mut c = cfg(&refused_port_url());
    c.max_retries = 8;
    c.retry_base_ms = 100;
    c.retry_max_ms = 2000;
    c.breaker_cooldown_secs = 0.2;
    c.max_outage_secs = 1.5;
    let s = shared(None, true);
    let cl = client(&c, &s);
    let t0 = Instant::now();
    let rs = join_all((0..200).map(|i| cl.chat("s", req(format!("p{i}"))))).await;
    let took = t0.elapsed();
    // Calls wait out the outage (probing) instead of failing at once, and stop together
    // once it lasts longer than max_outage_secs.
    assert!(took >= Duration::from_millis(1400), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let outage = rs
        .iter()
        .filter(|r| matches!(r, Err(TeacherError::Outage(_))))
        .count();
    assert!(outage >= 150, "only {outage} of 200 stopped as an outage");
    let e = rs.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(rs.iter().all(|r| r.is_err()));
    assert!(cl.stats().breaker_open);
    let e = rs
        .iter()
        .find_map(|r| match r {
            Err(e @ TeacherError::Outage(_)) => Some(e),
            _ => None,
        })
        .unwrap_or(e);
    assert!(e.is_fatal_for_step());
    assert!(e.to_string().contains("down for"), "{e}");
    // While down only probes go out, not 200 calls × 9 attempts.
    let sent = s.accounting.snapshot().total.requests;
    assert!(sent < 400, "{sent} attempts against a dead endpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_half_opens_after_an_outage_and_calls_go_on() {
    let mock = MockServer::start(MockConfig {
        record: false,
        latency: Duration::from_millis(20),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut c = cfg(&mock.base_url());
    c.max_in_flight = 32;
    c.max_retries = 2;
    c.breaker_cooldown_secs = 0.2;
    c.max_outage_secs = 30.0;
    let s = shared(None, true);
    let cl = client(&c, &s);
    // 2,000 calls of 20 ms at 32 in flight: ≈ 1.25 s of work, so the outage at 150 ms
    // lands in the middle of it.
    let calls = join_all((0..2000).map(|i| {
        let cl = cl.clone();
        async move { cl.chat("s", req(format!("p{i}"))).await }
    }));
    let outage = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        mock.outage(Duration::from_secs(2)).await;
    };
    let t0 = Instant::now();
    let (rs, ()) = tokio::join!(calls, outage);
    let failed: Vec<_> = rs.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} calls failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(mock.outages(), 1);
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(!cl.stats().breaker_open, "the breaker closed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_429s_do_not_shrink_the_window() {
    // The issue's trickle: 2.5% of requests answered 429 with Retry-After. The old
    // window halved on each isolated 429 and settled near 10 of 64.
    let mock = MockServer::start(MockConfig {
        rate_429: 0.025,
        retry_after_ms: 100,
        record: false,
        latency: Duration::from_millis(2),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut c = cfg(&mock.base_url());
    c.max_in_flight = 64;
    let s = shared(None, true);
    let cl = client(&c, &s);
    let mut smallest = 64;
    let calls = join_all((0..3000).map(|i| {
        let cl = cl.clone();
        async move { cl.chat("s", req(format!("p{i}"))).await }
    }));
    tokio::pin!(calls);
    let rs = loop {
        tokio::select! {
            rs = &mut calls => break rs,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                smallest = smallest.min(cl.stats().window);
            }
        }
    };
    assert!(rs.iter().all(|r| r.is_ok()));
    assert!(mock.requests() > 3000, "some 429s were injected");
    assert_eq!(smallest, 64, "the window shrank on isolated 429s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_429s_shrink_the_window_and_it_recovers() {
    // The first 200 attempts of requests matching "hot" are throttled; the rest pass.
    let mock = MockServer::start(MockConfig {
        error_rules: vec![ErrorRule {
            pattern: Regex::new("hot").unwrap(),
            times: 200,
            error: Injected::TooMany {
                retry_after_ms: 20,
                style: RetryAfterStyle::Millis,
            },
        }],
        record: false,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut c = cfg(&mock.base_url());
    c.max_in_flight = 64;
    c.max_retries = 30;
    let s = shared(None, true);
    let cl = client(&c, &s);
    let hot = join_all((0..64).map(|i| {
        let cl = cl.clone();
        async move { cl.chat("s", req(format!("hot {i}"))).await }
    }))
    .await;
    assert!(hot.iter().all(|r| r.is_ok()), "429s are retried, not final");
    assert!(
        cl.stats().window < 64,
        "sustained throttling shrank the window"
    );
    // Once the 429s stop (and the span forgets them) successes grow it back.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let cool = join_all((0..400).map(|i| {
        let cl = cl.clone();
        async move { cl.chat("s", req(format!("cool {i}"))).await }
    }))
    .await;
    assert!(cool.iter().all(|r| r.is_ok()));
    assert_eq!(cl.stats().window, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_with_an_unusable_body_fails_alone_and_the_breaker_stays_closed() {
    let mock = MockServer::start(MockConfig {
        error_rules: vec![ErrorRule {
            pattern: Regex::new("^bad").unwrap(),
            times: u64::MAX,
            error: Injected::InvalidJson,
        }],
        record: false,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut c = cfg(&mock.base_url());
    c.breaker_min_failures = 3;
    let s = shared(None, true);
    let cl = client(&c, &s);
    let rs = join_all((0..200).map(|i| {
        let cl = cl.clone();
        let p = if i % 5 == 0 {
            format!("bad {i}")
        } else {
            format!("good {i}")
        };
        async move { cl.chat("s", req(p)).await }
    }))
    .await;
    for (i, r) in rs.iter().enumerate() {
        if i % 5 == 0 {
            assert_eq!(r.as_ref().unwrap_err().class(), "bad_response", "{r:?}");
        } else {
            assert!(r.is_ok(), "{r:?}");
        }
    }
    assert!(!cl.stats().breaker_open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_pass_makes_zero_requests() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    let c = cfg(&mock.base_url());
    let reqs: Vec<ChatRequest> = (0..50)
        .map(|i| {
            let mut r = req(format!("q{}", i % 25));
            r.sample_index = (i / 25) as u32; // k = 2 samples are 2 distinct answers
            r
        })
        .collect();
    let first: Vec<ChatResponse> = {
        let cache = Arc::new(ResponseCache::open(&path).unwrap());
        let cl = client(&c, &shared(Some(cache.clone()), true));
        let rs = join_all(reqs.iter().map(|r| cl.chat("s", r.clone()))).await;
        cache.flush().await.unwrap();
        rs.into_iter().map(|r| r.unwrap()).collect()
    };
    assert_eq!(mock.chat_requests(), 50);
    // A new run (fresh process state), same cache file.
    let cache = Arc::new(ResponseCache::open(&path).unwrap());
    let s = shared(Some(cache.clone()), true);
    let cl = client(&c, &s);
    let second = join_all(reqs.iter().map(|r| cl.chat("s", r.clone()))).await;
    assert_eq!(mock.chat_requests(), 50, "second pass sent requests");
    for (a, b) in first.iter().zip(&second) {
        let b = b.as_ref().unwrap();
        assert!(b.cached);
        assert_eq!(a.content, b.content);
        assert_eq!(a.usage, b.usage);
    }
    let t = s.accounting.snapshot().total;
    assert_eq!((t.cache_hits, t.requests), (50, 0));
    // --no-cache: reads bypassed, requests sent again.
    let cl = client(&c, &shared(Some(cache), false));
    join_all(reqs.iter().map(|r| cl.chat("s", r.clone()))).await;
    assert_eq!(mock.chat_requests(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_key_appears_nowhere() {
    let canary = "sk-canary-7f3a9c1e5d2b4a68";
    std::env::set_var("RETORT_TEST_CANARY_KEY", canary);
    std::env::set_var("RETORT_TEST_WRONG_KEY", "sk-canary-wrong-0b1c2d3e4f");
    let mock = MockServer::start(MockConfig {
        require_key: Some(canary.to_string()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    let cache = Arc::new(ResponseCache::open(&path).unwrap());
    let mut c = cfg(&mock.base_url());
    c.api_key_env = Some("RETORT_TEST_CANARY_KEY".into());
    c.headers
        .insert("X-Extra-Token".into(), "hdr-canary-99887766".into());
    let s = shared(Some(cache.clone()), true);
    let cl = client(&c, &s);
    let rs = join_all((0..20).map(|i| cl.chat("s", req(format!("k{i}"))))).await;
    assert!(rs.iter().all(|r| r.is_ok()), "{:?}", rs[0]);
    // It was sent where it belongs.
    assert_eq!(
        mock.log()[0].header("authorization"),
        Some(format!("Bearer {canary}").as_str())
    );
    // A wrong key: the server echoes it back; the error must not carry it, and a 401
    // is not retried.
    let mut bad = c.clone();
    bad.api_key_env = Some("RETORT_TEST_WRONG_KEY".into());
    let before = mock.chat_requests();
    let e = client(&bad, &s).chat("s", req("x")).await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert_eq!(mock.chat_requests(), before + 1, "401 was retried");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("sk-canary-wrong"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
    // Not in configs, accounting or the cache file.
    cache.flush().await.unwrap();
    drop(cl);
    let texts = [
        format!("{c:?}"),
        serde_json::to_string(&c).unwrap(),
        format!("{:?}", Secret::from_env("RETORT_TEST_CANARY_KEY").unwrap()),
        serde_json::to_string(&s.accounting.snapshot()).unwrap(),
    ];
    for t in &texts {
        assert!(!t.contains(canary), "{t}");
        assert!(!t.contains("hdr-canary"), "{t}");
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains("sk-canary"), "key found in cache files");
        assert!(!hay.contains("hdr-canary"), "header found in cache files");
    }
}

/// A server that reflects the key everywhere it can (a 4xx message, a 2xx non-JSON body,
/// a valid answer's content, a JSON reply's field, a response header): nothing the
/// client hands back or caches carries it, for both providers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_echoing_the_key_leaves_it_nowhere() {
    let canary = "sk-echo-canary-51d0c3a9e7";
    std::env::set_var("RETORT_TEST_ECHO_KEY", canary);
    let mock = MockServer::start(MockConfig {
        echo_auth: true,
        rules: vec![retort_mock::ReplyRule {
            pattern: Regex::new("JSON-REPLY").unwrap(),
            reply: r#"{"score": 7, "rationale": "seen {{AUTH}}"}"#.to_string(),
        }],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    for provider in [Provider::Openai, Provider::Anthropic] {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(ResponseCache::open(dir.path().join("cache.sqlite")).unwrap());
        let mut c = cfg(&mock.base_url());
        c.provider = provider;
        c.api_key_env = Some("RETORT_TEST_ECHO_KEY".into());
        c.headers
            .insert("X-Extra-Token".into(), "hdr-echo-canary-4455".into());
        let s = shared(Some(cache.clone()), true);
        let cl = client(&c, &s);
        let mut shown = String::new();
        for p in [
            "LEAK-4XX",
            "LEAK-HTML",
            "LEAK-CONTENT",
            "JSON-REPLY",
            "plain",
        ] {
            match cl.chat("s", req(p)).await {
                Ok(r) => {
                    assert!(p != "LEAK-4XX" && p != "LEAK-HTML", "{p}: {r:?}");
                    shown.push_str(&format!("{r:?}\n"));
                }
                Err(e) => shown.push_str(&format!("{e} {e:?}\n")),
            }
        }
        // The echo reached the client (else the test proves nothing)…
        assert!(shown.contains("[redacted]"), "{shown}");
        // …and was removed from every answer and error.
        assert!(!shown.contains("canary"), "{shown}");
        cache.flush().await.unwrap();
        drop(cl);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains("canary"),
                "{provider:?}: a secret in the cache files"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_messages_shape() {
    std::env::set_var("RETORT_TEST_ANTHROPIC_KEY", "ak-test-123456");
    let mock = MockServer::start(MockConfig {
        require_key: Some("ak-test-123456".into()),
        error_rules: vec![ErrorRule {
            pattern: Regex::new("cut me").unwrap(),
            times: 1,
            error: Injected::Length,
        }],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut c = TeacherConfig::new(Provider::Anthropic, "claude-mock");
    c.base_url = Some(mock.root_url());
    c.api_key_env = Some("RETORT_TEST_ANTHROPIC_KEY".into());
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    let cl = client(&c, &shared(None, true));
    let r = ChatRequest {
        messages: vec![
            Message::system("You are terse."),
            Message::user("hello there"),
        ],
        temperature: Some(0.2),
        ..Default::default()
    };
    let a = cl.chat("s", r).await.unwrap();
    assert_eq!(a.content, "echo: hello there");
    assert_eq!(a.finish_reason, FinishReason::Stop);
    assert!(a.usage.prompt_tokens > 0 && a.usage.completion_tokens > 0);
    let log = mock.log();
    assert_eq!(log[0].path, "/v1/messages");
    assert_eq!(log[0].header("x-api-key"), Some("ak-test-123456"));
    assert_eq!(log[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(log[0].header("authorization"), None);
    let body: serde_json::Value = serde_json::from_str(&log[0].body).unwrap();
    assert_eq!(body["system"], "You are terse.");
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["max_tokens"], 1024);
    // stop_reason = max_tokens maps to Length; required-complete turns it into Truncated.
    let e = cl
        .chat_with(
            "s",
            req("please cut me"),
            CallOptions {
                require_complete: true,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, TeacherError::Truncated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_is_reported_or_truncated_per_call_and_cached_either_way() {
    let mock = MockServer::start(MockConfig {
        error_rules: vec![ErrorRule {
            pattern: Regex::new("long").unwrap(),
            times: 1,
            error: Injected::Length,
        }],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ResponseCache::open(dir.path().join("c.sqlite")).unwrap());
    let cl = client(&cfg(&mock.base_url()), &shared(Some(cache), true));
    let a = cl.chat("s", req("a long answer")).await.unwrap();
    assert_eq!(a.finish_reason, FinishReason::Length);
    let opts = CallOptions {
        require_complete: true,
    };
    let e = cl
        .chat_with("s", req("a long answer"), opts)
        .await
        .unwrap_err();
    assert_eq!(e.class(), "truncated");
    assert_eq!(mock.chat_requests(), 1, "the paid answer was not reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_not_retried() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // A wrong path gives 404.
    let cl = client(
        &cfg(&format!("{}/nope/v1", mock.root_url())),
        &shared(None, true),
    );
    let e = cl.chat("s", req("x")).await.unwrap_err();
    assert_eq!((e.class(), e.status()), ("http_4xx", Some(404)));
    assert_eq!(mock.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_pool_spreads_by_weight() {
    let a = MockServer::start(MockConfig::default()).await.unwrap();
    let b = MockServer::start(MockConfig::default()).await.unwrap();
    let mut c = cfg("unused");
    c.base_url = None;
    c.endpoints = vec![
        EndpointConfig {
            url: a.base_url(),
            weight: 1.0,
        },
        EndpointConfig {
            url: b.base_url(),
            weight: 3.0,
        },
    ];
    let cl = client(&c, &shared(None, true));
    let rs = join_all((0..400).map(|i| cl.chat("s", req(format!("w{i}"))))).await;
    assert!(rs.iter().all(|r| r.is_ok()));
    let (na, nb) = (a.chat_requests() as f64, b.chat_requests() as f64);
    assert_eq!(na + nb, 400.0);
    assert!(
        (2.0..=4.5).contains(&(nb / na)),
        "weights 1:3 gave {na}:{nb}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_pool_survives_failing_endpoints() {
    let good = MockServer::start(MockConfig::default()).await.unwrap();
    let broken = MockServer::start(MockConfig {
        rate_500: 1.0,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let late = MockServer::start(MockConfig::default()).await.unwrap();
    let mut c = cfg("unused");
    c.base_url = None;
    c.endpoints = [
        good.base_url(),
        refused_port_url(),
        broken.base_url(),
        late.base_url(),
    ]
    .into_iter()
    .map(|url| EndpointConfig { url, weight: 1.0 })
    .collect();
    c.max_in_flight = 8;
    let s = shared(None, true);
    let cl = client(&c, &s);
    let first = join_all((0..150).map(|i| cl.chat("s", req(format!("e{i}"))))).await;
    // One more endpoint dies mid-run.
    late.shutdown();
    let second = join_all((150..300).map(|i| cl.chat("s", req(format!("e{i}"))))).await;
    for r in first.iter().chain(&second) {
        assert!(r.is_ok(), "{r:?}");
    }
    assert!(
        broken.chat_requests() <= 10,
        "{} requests to the broken endpoint",
        broken.chat_requests()
    );
    assert!(!cl.stats().breaker_open);
    assert!(good.chat_requests() > 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_stops_new_requests() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut c = cfg(&mock.base_url());
    // Each answer costs a few tokens × $1000/Mtok ≈ $0.005–0.01.
    c.price_input_per_mtok = Some(1000.0);
    c.price_output_per_mtok = Some(1000.0);
    let s = Arc::new(Shared::new(
        None,
        true,
        Arc::new(Accounting::new(Some(0.03))),
    ));
    let cl = client(&c, &s);
    let mut ok = 0;
    let mut first_err = None;
    for i in 0..20 {
        match cl.chat("s", req(format!("budget {i}"))).await {
            Ok(_) => ok += 1,
            Err(e) => {
                first_err = Some(e);
                break;
            }
        }
    }
    assert!(matches!(first_err, Some(TeacherError::Budget(_))));
    assert!((2..20).contains(&ok), "{ok}");
    assert_eq!(mock.chat_requests(), ok);
    let snap = s.accounting.snapshot();
    assert!(snap.budget_reached && snap.spent_usd >= 0.03);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_batched_and_in_order() {
    let mock = MockServer::start(MockConfig {
        embedding_dim: 8,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut ec = EmbedderConfig::new(EmbedderProvider::Openai);
    ec.base_url = Some(mock.base_url());
    ec.model = Some("mock-embed".into());
    ec.batch_size = 4;
    assert!(ec.validate().is_empty());
    let e = OpenAiEmbedder::new(&ec).unwrap();
    let texts: Vec<String> = (0..10).map(|i| format!("text {i}")).collect();
    let v = e.embed(&texts).await.unwrap();
    assert_eq!(mock.embedding_requests(), 3);
    assert_eq!(e.dim(), 8);
    for (t, x) in texts.iter().zip(&v) {
        assert_eq!(x, &retort_mock::mock_embedding(t, 8));
    }
}

/// A chat whose earlier assistant turn carries a stored trace, which must never be sent.
fn with_history(text: &str) -> ChatRequest {
    let mut earlier = Message::assistant("earlier answer");
    earlier.reasoning = Some("STORED-TRACE-NOT-TO-SEND".into());
    ChatRequest {
        messages: vec![Message::user("first"), earlier, Message::user(text)],
        max_tokens: Some(64),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_is_captured_from_every_shape_and_kept_out_of_the_answer() {
    use retort_mock::{trace_for, ReasoningShape};
    for shape in [
        ReasoningShape::ReasoningContent,
        ReasoningShape::Reasoning,
        ReasoningShape::Think,
    ] {
        let mock = MockServer::start(MockConfig {
            reasoning: Some(shape),
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(ResponseCache::open(dir.path().join("cache.sqlite")).unwrap());
        let c = cfg(&mock.base_url());
        let cl = client(&c, &shared(Some(cache.clone()), true));
        let a = cl.chat("s", with_history("what is 2+2")).await.unwrap();
        assert_eq!(a.content, "echo: what is 2+2", "{shape:?}");
        assert_eq!(
            a.reasoning.as_deref(),
            Some(trace_for("what is 2+2").as_str()),
            "{shape:?}"
        );
        // From the cache, the same split.
        cache.flush().await.unwrap();
        let cl2 = client(&c, &shared(Some(cache.clone()), true));
        let b = cl2.chat("s", with_history("what is 2+2")).await.unwrap();
        assert!(b.cached, "{shape:?}");
        assert_eq!(
            (b.content, b.reasoning),
            (a.content, a.reasoning),
            "{shape:?}"
        );
        let log = mock.log();
        assert_eq!(log.len(), 1, "{shape:?}");
        assert!(!log[0].body.contains("STORED-TRACE"), "{}", log[0].body);
    }

    // Anthropic: extended thinking is asked for with a budget and read from its block.
    std::env::set_var("RETORT_TEST_THINK_KEY", "ak-think-123456");
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut c = TeacherConfig::new(Provider::Anthropic, "claude-mock");
    c.base_url = Some(mock.root_url());
    c.api_key_env = Some("RETORT_TEST_THINK_KEY".into());
    let cl = client(&c, &shared(None, true));
    let mut r = with_history("what is 2+2");
    r.max_reasoning_tokens = Some(2048);
    let a = cl.chat("s", r).await.unwrap();
    assert_eq!(a.content, "echo: what is 2+2");
    assert_eq!(
        a.reasoning.as_deref(),
        Some(trace_for("what is 2+2").as_str())
    );
    let body: serde_json::Value = serde_json::from_str(&mock.log()[0].body).unwrap();
    assert_eq!(
        body["thinking"],
        serde_json::json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert!(!mock.log()[0].body.contains("STORED-TRACE"));
    // Without a budget, no thinking is asked for and none comes back.
    let a = cl.chat("s", with_history("plain")).await.unwrap();
    assert_eq!(a.reasoning, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_goes_to_each_api_in_its_own_form() {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["answer", "n"],
        "additionalProperties": false,
    });
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut r = req("give json");
    r.response_format = Some(schema.clone());
    let a = client(&cfg(&mock.base_url()), &shared(None, true))
        .chat("s", r.clone())
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&a.content).unwrap();
    assert_eq!(v["n"], 1, "{}", a.content);
    let sent: serde_json::Value = serde_json::from_str(&mock.log()[0].body).unwrap();
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(sent["response_format"]["json_schema"]["schema"], schema);

    std::env::set_var("RETORT_TEST_TOOL_KEY", "ak-tool-123456");
    let mut c = TeacherConfig::new(Provider::Anthropic, "claude-mock");
    c.base_url = Some(mock.root_url());
    c.api_key_env = Some("RETORT_TEST_TOOL_KEY".into());
    let a = client(&c, &shared(None, true)).chat("s", r).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&a.content).unwrap();
    assert_eq!(v["n"], 1, "{}", a.content);
    let sent: serde_json::Value = serde_json::from_str(&mock.log()[1].body).unwrap();
    assert_eq!(sent["tools"][0]["input_schema"], schema);
    assert_eq!(
        sent["tool_choice"],
        serde_json::json!({"type": "tool", "name": "output"})
    );

    // OpenAI's other forms: `text` asks for no schema, `json_object` for any object.
    let anth = client(&c, &shared(None, true));
    let mut t = req("plain text please");
    t.response_format = Some(serde_json::json!({"type": "text"}));
    assert_eq!(
        anth.chat("s", t).await.unwrap().content,
        "echo: plain text please"
    );
    let sent: serde_json::Value = serde_json::from_str(&mock.log()[2].body).unwrap();
    assert!(sent.get("tools").is_none(), "{sent}");
    let mut o = req("any object");
    o.response_format = Some(serde_json::json!({"type": "json_object"}));
    anth.chat("s", o).await.unwrap();
    let sent: serde_json::Value = serde_json::from_str(&mock.log()[3].body).unwrap();
    assert_eq!(
        sent["tools"][0]["input_schema"],
        serde_json::json!({"type": "object"})
    );
}

/// A request that offers one tool, after a conversation in which the model already
/// called it and got its result.
fn tool_request(text: &str) -> ChatRequest {
    let mut call = Message::assistant("");
    call.tool_calls = vec![retort_core::ToolCall {
        id: Some("call_0".into()),
        name: "get_weather".into(),
        arguments: r#"{"city":"Rome"}"#.into(),
    }];
    let mut result = Message::new("tool", r#"{"temp": 21}"#);
    result.tool_call_id = Some("call_0".into());
    result.name = Some("get_weather".into());
    ChatRequest {
        messages: vec![
            Message::user("Weather in Rome?"),
            call,
            result,
            Message::user(text),
        ],
        max_tokens: Some(64),
        tools: vec![serde_json::json!({"type": "function", "function": {
            "name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}})],
        tool_choice: Some(serde_json::json!("auto")),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_go_to_each_api_in_its_own_form_and_calls_come_back() {
    let mock = MockServer::start(MockConfig {
        call_tools: true,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ResponseCache::open(dir.path().join("cache.sqlite")).unwrap());
    let c = cfg(&mock.base_url());
    let a = client(&c, &shared(Some(cache.clone()), true))
        .chat("s", tool_request("And Paris?"))
        .await
        .unwrap();
    assert_eq!(a.finish_reason, retort_teacher::FinishReason::ToolCalls);
    assert_eq!(a.content, "");
    assert_eq!(a.tool_calls.len(), 1);
    assert_eq!(a.tool_calls[0].name, "get_weather");
    let args: serde_json::Value = serde_json::from_str(&a.tool_calls[0].arguments).unwrap();
    assert!(args["city"].is_string(), "{args}");
    // The history went out in OpenAI's shape: the call with its id, the result with
    // the id it answers; tools and tool_choice as given.
    let sent: serde_json::Value = serde_json::from_str(&mock.log()[0].body).unwrap();
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_0");
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Rome"}"#
    );
    assert_eq!(sent["messages"][2]["tool_call_id"], "call_0");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "auto");
    // From the cache, the same calls.
    cache.flush().await.unwrap();
    let b = client(&c, &shared(Some(cache.clone()), true))
        .chat("s", tool_request("And Paris?"))
        .await
        .unwrap();
    assert!(b.cached);
    assert_eq!(b.tool_calls, a.tool_calls);

    // Anthropic: definitions as input_schema tools, the call as a tool_use block, the
    // result as a tool_result block of a user turn; the answer's tool_use comes back as
    // a call.
    std::env::set_var("RETORT_TEST_TOOLS_KEY", "ak-tools-123456");
    let mut ac = TeacherConfig::new(Provider::Anthropic, "claude-mock");
    ac.base_url = Some(mock.root_url());
    ac.api_key_env = Some("RETORT_TEST_TOOLS_KEY".into());
    let anth = client(&ac, &shared(None, true));
    let a = anth.chat("s", tool_request("And Paris?")).await.unwrap();
    assert_eq!(a.tool_calls.len(), 1, "{a:?}");
    assert_eq!(a.tool_calls[0].name, "get_weather");
    assert!(a.tool_calls[0].id.as_deref().unwrap().starts_with("toolu_"));
    let sent: serde_json::Value = serde_json::from_str(&mock.log()[1].body).unwrap();
    assert_eq!(sent["tools"][0]["input_schema"]["required"][0], "city");
    assert_eq!(sent["tool_choice"], serde_json::json!({"type": "auto"}));
    assert_eq!(sent["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(sent["messages"][1]["content"][0]["input"]["city"], "Rome");
    assert_eq!(sent["messages"][2]["role"], "user");
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], "call_0");
    // Once the last turn is the tool's result, the model answers in text.
    let mut done = tool_request("unused");
    done.messages.pop();
    let a = anth.chat("s", done).await.unwrap();
    assert!(a.tool_calls.is_empty() && !a.content.is_empty(), "{a:?}");
    // A schema and tools in one Anthropic request cannot both be honoured: an error.
    let mut both = tool_request("x");
    both.response_format = Some(serde_json::json!({"type": "object"}));
    let e = anth.chat("s", both).await.unwrap_err().to_string();
    assert!(e.contains("both"), "{e}");
}
