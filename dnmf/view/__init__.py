"""What a person sees of a fit: progress bars, text and HTML summaries."""
