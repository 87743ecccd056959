"""Drip sequences: definitions, enrolments, due steps, goals and send windows."""
