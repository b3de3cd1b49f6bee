"""Step 2 of the two-step example, run at the researcher's own site: a report from aggregates.

Reads the aggregates of step 1 (`count`, `sum`, `sum_of_squares`) from input
`stats` and writes the count, mean and (population) standard deviation, as JSON,
to output `report`.
"""

import json
import math
from pathlib import Path

stats = json.loads(Path("/mahiru/inputs/stats/stats.json").read_text())
count = stats["count"]
mean = stats["sum"] / count
variance = max(stats["sum_of_squares"] / count - mean * mean, 0.0)
report = {"count": count, "mean": round(mean, 2), "stdev": round(math.sqrt(variance), 2)}
Path("/mahiru/outputs/report/report.json").write_text(json.dumps(report) + "\n")
print("reported on", count, "numbers")
