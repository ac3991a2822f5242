"""kaslite-core's own plugins, registered through the same manager as any other."""
