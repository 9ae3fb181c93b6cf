#!/usr/bin/env python3
"""The script a user would write instead of `retort run`: answer every prompt of a JSONL
file with an OpenAI-compatible server, at most C requests at once.

It is deliberately plain: `AsyncOpenAI` with its default settings (retries, connection
pool, backoff) except `base_url`, `api_key` and `timeout`, `asyncio.gather` over every
prompt and an `asyncio.Semaphore(C)`. Answers go to a JSONL file. A prompt whose call
raises (after the client's own retries) is counted as an error and skipped.

Prints one JSON line on stdout: wall_s (the gather, without interpreter start-up),
ok, errors and error kinds (exception class names).

Used by scripts/bench-engine.sh; it runs anywhere `pip install openai` works.
"""

import argparse
import asyncio
import collections
import json
import sys
import time

from openai import AsyncOpenAI


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", default="mock-model")
    ap.add_argument("--prompts", required=True, help="JSONL with an `instruction` field")
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--timeout", type=float, required=True, help="seconds per request")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--out", required=True, help="answers JSONL")
    a = ap.parse_args()

    with open(a.prompts, encoding="utf-8") as f:
        prompts = [json.loads(line) for line in f if line.strip()]

    client = AsyncOpenAI(base_url=a.base_url, api_key="x", timeout=a.timeout)
    sem = asyncio.Semaphore(a.concurrency)

    async def answer(p):
        async with sem:
            try:
                r = await client.chat.completions.create(
                    model=a.model,
                    messages=[{"role": "user", "content": p["instruction"]}],
                    max_tokens=a.max_tokens,
                    temperature=a.temperature,
                )
                return p["id"], r.choices[0].message.content, None
            except Exception as e:  # noqa: BLE001 - a user script keeps going
                return p["id"], None, type(e).__name__

    t0 = time.monotonic()
    results = await asyncio.gather(*(answer(p) for p in prompts))
    wall = time.monotonic() - t0

    kinds = collections.Counter()
    ok = 0
    with open(a.out, "w", encoding="utf-8") as out:
        for pid, content, err in results:
            if err is None and content is not None:
                ok += 1
                out.write(json.dumps({"id": pid, "output": content}) + "\n")
            else:
                kinds[err or "no_content"] += 1
    await client.close()
    print(
        json.dumps(
            {
                "wall_s": round(wall, 2),
                "ok": ok,
                "errors": sum(kinds.values()),
                "error_kinds": dict(kinds),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
