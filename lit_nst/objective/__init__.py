"""The objective and how it is evaluated: the backbone, its weights and preprocessing, the losses, the exact block
walk, colour and clamping. No Lightning and no files but the weights: the part a researcher reads against the paper."""
