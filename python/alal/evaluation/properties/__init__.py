"""The property groups of ``alal eval``, one module each; every one is a function
``(calc_factory, element, settings) -> Result`` (the test set also takes its labelled frames)."""
