"""The Salesforce sandbox (a fake org for tests and the demo)."""
