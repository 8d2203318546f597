"""Custom components (Home Agent lives in home_agent/)."""
