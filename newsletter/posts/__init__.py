"""Posts: importing articles from text, Markdown, HTML and feeds into structured blocks."""
