"""Analysis: neural predictivity, noise ceilings, theory of deep networks, plots."""
