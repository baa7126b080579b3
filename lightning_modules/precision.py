"""The training precisions the LightningModules are safe in (their own module: the schema reads it without
importing Lightning)."""

from __future__ import annotations

from enum import StrEnum

Precision = StrEnum("Precision", [(name, name) for name in ("32-true", "bf16-mixed")])
Precision.__doc__ = """Training precisions (config key ``trainer.precision``, Lightning's names).

``bf16-mixed`` runs forward passes under bfloat16 autocast; the weights, the optimizer and the losses stay float32
(the losses cast their inputs), and so do the analyses, which run outside autocast. Half-precision weights
(``*-true``) would put the analyses in half precision, and ``16-mixed`` needs a GradScaler, which reads its
overflow flag on the host every step; neither is offered."""
