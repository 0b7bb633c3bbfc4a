"""bluemule: a phone or gateway as a data mule for offline Particle fleets.

Packages:
    bluemule.image   Particle module, asset and bundle formats (pure, no I/O but explicit loaders).
    bluemule.cli     The ``bluemule`` command, a thin shell over the library.
"""

__version__ = "0.1.0"
