"""The feed process (`flask feed run`): one market-data session for the whole desk, from the paper
simulator or a broker's stream into the quote store (webapp.marketdata). It sits on top of the
layers, beside jobs/ and the blueprints, so market data below it never imports the trading core."""
