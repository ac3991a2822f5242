"""Kept so plugins written against plugin API 1 still import their validators from here: they live in
:mod:`kaslite.config.validation` now."""

from kaslite.config.validation import at_least, between, integer_at_least, non_empty, non_negative, one_of, positive

__all__ = ["at_least", "between", "integer_at_least", "non_empty", "non_negative", "one_of", "positive"]
