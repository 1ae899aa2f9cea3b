"""A small chat service laid out like the one in the incident reports."""
