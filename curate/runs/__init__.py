"""What each stage leaves on disk: file names, the stem rule, and typed readers/writers of each stage's evidence."""
