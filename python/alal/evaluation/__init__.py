"""Judge a potential on physical properties against its oracle (``alal eval``).

Every property is computed twice, with the committee's calculator and with the oracle's, each at
its own equilibrium: equation of state, elastic constants, vacancy and self-interstitial,
surfaces and the stacking fault, phase energies, phonons, the liquid's g(r), MD stability; then
the committee's errors on an independent test set and the calibration of its spread.

Example::

    from ase.calculators.emt import EMT
    from alal.evaluation import QUICK, evaluate, write_report
    from alal.plugins import load_model

    model = load_model("runs/aluminium/models/gen-0010/model.safetensors")
    ev = evaluate(model.calculator, EMT, "Al", QUICK, properties=["eos", "elastic"])
    write_report(ev, "report")
"""

from alal.evaluation.report import write_report
from alal.evaluation.runner import PROPERTIES, Evaluation, evaluate, evaluation_from_dict, select_properties
from alal.evaluation.settings import QUICK, EvalSettings

__all__ = ["PROPERTIES", "QUICK", "EvalSettings", "Evaluation", "evaluate", "evaluation_from_dict",
           "select_properties", "write_report"]
