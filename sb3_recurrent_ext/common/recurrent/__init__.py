"""The one home of recurrence: nets, hidden states, sequences, SLM specs."""
