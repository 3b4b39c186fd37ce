"""Jobs: the database queue, the worker that runs fine-tune, evaluate and suggest jobs, and their pages."""
