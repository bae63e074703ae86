"""The metrics of a run: toxicity, fluency, diversity, capability, judge agreement, paired comparisons."""
