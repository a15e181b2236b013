"""Latency of an HTTP request repeated on one keep-alive connection, for the bench-*.sh scripts
(the same client for every server they compare)."""
import statistics
import sys
import time

# Requests sent before timing starts (connection set-up, caches).
WARMUP = 5


def time_requests(connection, name, method, path, body, headers, rounds):
    """Sends the request WARMUP + rounds times and returns ({"median_ms", "p90_ms"}, the last
    answer's body). Exits with the answer on any status but 200."""
    times = []
    for i in range(WARMUP + rounds):
        began = time.perf_counter()
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        answer = response.read()
        elapsed = time.perf_counter() - began
        if response.status != 200:
            sys.exit(f"{name}: HTTP {response.status}: {answer[:300]!r}")
        if i >= WARMUP:
            times.append(elapsed)
    times.sort()
    figures = {"median_ms": round(statistics.median(times) * 1e3, 3),
               "p90_ms": round(times[int(len(times) * 0.9)] * 1e3, 3)}
    return figures, answer
