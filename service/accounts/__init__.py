"""Accounts: users and roles, log in and tokens, passwords, patient invitations and activation."""
