"""Salesforce CRM connector."""
