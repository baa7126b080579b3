"""latentdream's bottom layer: what every package may import (:mod:`latentdream.errors`), importing nothing else."""
