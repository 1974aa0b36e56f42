// Keeps libraries whose sources are globbed non-empty while they grow.
