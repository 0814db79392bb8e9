"""Built-in engines (``alal.engines`` entry points): ``ase`` (Langevin MD in ASE with the
committee calculator and an uncertainty stop rule; :mod:`alal.engines.ase_md`)."""
