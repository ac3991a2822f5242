"""Wide seeds: a hidden layer from the network's input straight to its output.

A deep seed (:class:`~kaslite.nn.seed.SentinelSeed`) adds a layer inside the
trunk and a width seed (:class:`~kaslite.nn.width.WidthSeed`) adds units to
one of its layers. A wide seed is a width seed placed beside the whole trunk:
its units read the network's input and its zero-initialised fan-out adds
``α·branch(x)`` to the network's output (the wide-and-deep layout). On 8×8
digits, where a plain MLP loses about a point of accuracy per hidden layer it
adds and gains with width, that is the growth that pays.

Everything else (lifecycle, exactness, no shadow training, GradMax fan-in) is
a width seed's.
"""

from kaslite.nn.width import WideBranch, WidthSeed

__all__ = ["WideBranch", "WideSeed"]


class WideSeed(WidthSeed):
    """A dormant branch ``input → units → outputs`` whose output is added to the network's output."""

    kind = "wide"
