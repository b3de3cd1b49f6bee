"""Sources of the scenario asset images, shipped with the package so `mahiru demo` can build them.

- `compute_to_data_input/`: the files of the input data set, placed under `/data`.
- `minmax/`: the min/max compute program, placed under `/opt/mahiru-minmax/`.

`mahiru.runtime.assets` turns these into images; `scenarios/assets/` links here.
"""
