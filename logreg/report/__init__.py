"""What people look at: tables, plots, and the comparison of stores (`logreg compare`).

tables   one Markdown layout and cell format; CSV files
plots    PNG figures (matplotlib, Agg) from plain data
compare  MLflow stores -> throughput, speedup, crossover and sweep tables and plots
"""
