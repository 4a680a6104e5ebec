"""Model quality over time: online metrics per version and window from moderators' outcomes, and the policy that
rolls a worse new champion back."""
