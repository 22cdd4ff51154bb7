"""Bounded load on loopback: 500 requests at concurrency 16, zero errors, server healthy after."""

from __future__ import annotations

import asyncio

import httpx

from tests.serving.conftest import AUTH


async def _hammer(url: str, name: str, total: int, concurrency: int) -> list[int]:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=AUTH) as client:

        async def one(i: int) -> int:
            async with sem:
                stream = i % 5 == 0
                r = await client.post(
                    "/v1/completions",
                    json={
                        "model": name,
                        "prompt": f"def f{i}(x):",
                        "max_tokens": 1 + i % 8,
                        "temperature": 0.7,
                        "seed": i,
                        "stream": stream,
                    },
                )
                if r.status_code == 200 and stream and not r.text.rstrip().endswith("data: [DONE]"):
                    return 599
                return r.status_code

        return await asyncio.gather(*(one(i) for i in range(total)))


def test_500_requests_at_concurrency_16(server):
    url, name, log = server
    statuses = asyncio.run(_hammer(url, name, total=500, concurrency=16))
    assert statuses.count(200) == 500, {s: statuses.count(s) for s in set(statuses)}
    assert httpx.get(url + "/readyz").status_code == 200
    after = httpx.post(
        url + "/v1/completions", json={"model": name, "prompt": "x", "max_tokens": 2}, headers=AUTH, timeout=30
    )
    assert after.status_code == 200
    metrics = httpx.get(url + "/metrics").text
    line = next(
        ln
        for ln in metrics.splitlines()
        if ln.startswith('qwenflow_requests_total{endpoint="/v1/completions",status="200"}')
    )
    assert float(line.split()[-1]) >= 500
    assert "Traceback" not in log.read_text()
