"""The Prometheus the analysis tests query is the real server, and it reports
the success ratio the test sets on the endpoint it scrapes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from support.prometheus import JOB, PrometheusQueryError

if TYPE_CHECKING:
    from support.prometheus import LivePrometheus


async def test_the_ratio_the_endpoint_serves_is_what_promql_returns(
    prometheus: LivePrometheus,
) -> None:
    prometheus.set_success_ratio(0.99)
    assert await prometheus.wait_for_ratio(0.99, tolerance=0.005) == pytest.approx(0.99, abs=0.005)

    # A drop shows once the rate window holds only samples after the change.
    prometheus.set_success_ratio(0.5)
    assert await prometheus.wait_for_ratio(0.5, tolerance=0.01) == pytest.approx(0.5, abs=0.01)

    # The shape Argo Rollouts' prometheus provider reads: an instant vector of
    # one sample, which `result[0]` in a successCondition indexes.
    data = await prometheus.server.query_data(prometheus.ratio_query)
    assert data["resultType"] == "vector"
    assert len(data["result"]) == 1


async def test_it_is_a_real_promql_engine_scraping_a_real_target(
    prometheus: LivePrometheus,
) -> None:
    # The target is up as Prometheus' own scrape loop records it.
    assert await prometheus.query(f'up{{job="{JOB}"}}') == 1.0
    # Both series were scraped under their status label.
    assert await prometheus.query('count(http_requests_total{status=~"200|500"})') == 2.0
    # Malformed PromQL is refused by the parser with its own message.
    with pytest.raises(PrometheusQueryError, match="bad_data"):
        await prometheus.query("sum(rate(http_requests_total[5s])")
