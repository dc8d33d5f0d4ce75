"""What several blocks share: number-format helpers and stream payload layouts."""
