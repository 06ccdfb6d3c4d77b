"""hiscore's benchmarks, each figure beside a baseline measured in the same run: run
``python -m bench`` (see ``bench/__main__.py`` and the README's Benchmarks section)."""
