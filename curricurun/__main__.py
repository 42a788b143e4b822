"""``python -m curricurun`` (and so ``accelerate launch -m curricurun train RECIPE``)."""

from curricurun.cli import entry

if __name__ == "__main__":
    entry()
