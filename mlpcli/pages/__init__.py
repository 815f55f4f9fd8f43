"""Pages of runs and sweeps (`mlp report`): one self-contained HTML file each, built from the
folder's files alone, every text from a file escaped, images inline, no script and no request."""
