"""A Turn.io simulator: the Data Export API and a webhook sender, faults included.

    dataset = Dataset.generate(DatasetSpec(seed=1, messages=20_000))    # turnsim.dataset
    sim = Simulator(dataset, SimConfig(rate_limit=60))                   # turnsim.simulator
    with running(sim) as base_url: ...                                   # turnsim.server
    report = await WebhookSender(gateway, secret).send(dataset.webhook_deliveries())

Behaviour where Turn's is unknown, chosen here (turn-api.md §3, §4, §8):
- Windows are half-open, `from <= t < until`; messages filter and order on their `timestamp`
  (epoch seconds), contacts on `updated_at`; ties are broken by id. `ordering` defaults to asc.
- `from`/`until` must be ISO-8601 with a zone (`Z` or `+hh:mm`), fractions up to 6 digits;
  an epoch, a date, a naive time, `until` in the future or `from >= until` -> 400.
- `page_size` outside 1..max_page_size (1000) -> 400 (not clamped); default 50.
- A cursor is a snapshot taken at its creation; `next` cursors expire with their first cursor
  (`cursor_ttl` after the POST) -> 400 `{"errors":[{"title":"Cursor expired",...}]}`.
  Re-reading a cursor returns the same page and `next`. The last page's `paging` is `null`,
  `{}` or `{"next": null}` in rotation.
- 401 bad/missing token; 406 without `Accept: application/vnd.v1+json`; neither is counted by
  the rate limit, and every /v1 answer has X-Ratelimit-Bucket/Limit/Remaining/Reset
  (Reset = fractional epoch seconds when the oldest call leaves the sliding window).
- Faults (SimConfig, changeable at runtime via `Simulator.configure` or POST /_sim/config):
  error_rate (500/503 JSON, 502 HTML), latency, max_window (500 on every page of a wider
  cursor), late_share/late_delay (dataset.LateModel), arrival_rate, contact_cursor_403_burst.
"""
