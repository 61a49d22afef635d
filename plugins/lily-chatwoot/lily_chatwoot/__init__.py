"""lily-chatwoot: Chatwoot for Lily. The hooks are in :mod:`lily_chatwoot.plugin`."""
