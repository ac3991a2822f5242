"""Reading Prometheus exposition text in tests: samples by name and labels, scraped over HTTP."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, dict[frozenset[tuple[str, str]], float]]


def parse(text: str) -> Samples:
    """Sample name -> {frozenset of (label, value)} -> value."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of the one sample ``name`` with exactly ``labels``."""
    return samples[name][frozenset(labels.items())]


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of ``name`` (empty if there is none)."""
    return samples.get(name, {})


def scrape(url: str, timeout: float = 10) -> str:
    """GET ``url`` and return its body as text."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()
