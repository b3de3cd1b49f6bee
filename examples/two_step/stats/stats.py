"""Step 1 of the two-step example, run where the data is: count, sum and sum of squares.

Reads a JSON list of numbers from input `numbers` and writes only these three
aggregates, as JSON, to output `stats`; the numbers themselves stay where they are.
"""

import json
from pathlib import Path

numbers = json.loads(Path("/mahiru/inputs/numbers/data.json").read_text())
stats = {
    "count": len(numbers),
    "sum": sum(numbers),
    "sum_of_squares": sum(number * number for number in numbers),
}
Path("/mahiru/outputs/stats/stats.json").write_text(json.dumps(stats) + "\n")
print("aggregated", len(numbers), "numbers")
