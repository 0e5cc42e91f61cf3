"""Documents: type sniffing, parsers with page numbers and headings, token-aware chunking."""
