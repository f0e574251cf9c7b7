set encoding utf8
set terminal pngcairo noenhanced size 1024,640
set output 'regret.png'
set title 'regret per inference against the optimal stopping rule (synthetic, agreement bit)'
set xlabel 'inferences'
set ylabel 'average regret per inference'
set grid
set key outside right top box
set logscale x 10
plot 'regret.dat' index 0 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'optimal rule', \
     '' index 1 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'dee (streak_bins 2)', \
     '' index 2 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'dee (streak_bins 1)', \
     '' index 3 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'max_prob >= 0.50, hindsight', \
     '' index 4 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'ucb_exit', \
     '' index 5 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'epsilon_greedy'
